"""Training a captioning VLM: compose a LLaVA checkpoint, LoRA fine-tune it (or Qwen2.5-VL), merge the adapter.

The entry scripts (`train.py`, `merge_lora_weights.py`) are thin; the logic lives in small modules here:

- `options`: `TrainOptions`, every setting of a run by section (model, data, evaluation, scope, and
  `VLMTrainingArguments`, which extends HF's `TrainingArguments`), with their defaults and the combination checks;
  train.py parses them with `vlmkit.config_files.ConfigParser` (HfArgumentParser + `--config` recipe files).
- `run`: the orchestration: checks, then `prepare`, distributed set-up, `model`, training, `summary`.
- `prepare`: the data files read and every sample preflighted before any weights load; the preflight report.
- `model`: the base to train (given, pre-trained, or composed), loaded with the training scope applied.
- `summary`: `train_summary.json` over the whole run, resumes included.
- `preflight`: every sample opened and tokenised before any model loads (parallel, cached); lengths judged.
- `compose`: frozen CLIP/SigLIP + 2-layer MLP projector + a causal LM → a standard `LlavaForConditionalGeneration`
  checkpoint (plus its `LlavaProcessor`); `chat`: the LM's own chat template made image-aware.
- `data`: training samples → model inputs with only the assistant answers supervised.
- `lora`: the training scope: LoRA targets per architecture, parts trained in full (LM layers, vision, merger).
- `trainer`: the HF `Trainer` with a separate projector learning rate, DeepSpeed config checks.
- `callbacks`: complete-marked checkpoints, loss logged at every save, loss curve, eval captions; `plots`: the PNGs.
- `checkpoint`: the metadata every checkpoint carries so that merge/inference need only the adapter folder; which
  checkpoint a run resumes from (the newest complete one for `last`).
- `merge`: adapter (or trained weights) + base → standalone checkpoint, verified by comparing logits.
- `launch`: torchrun for train.py with a bad input kept to one line.
"""
