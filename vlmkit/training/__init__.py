"""Training a captioning VLM: compose a LLaVA checkpoint, LoRA fine-tune it (or Qwen2.5-VL), merge the adapter.

The entry scripts (`train.py`, `merge_lora_weights.py`) are thin; the logic lives in small modules here:

- `options`: `TrainOptions`, every setting of a run with its default (train.py's flags), and the combination checks.
- `run`: the orchestration: checks, preflight, distributed set-up, loading, training, summary.
- `preflight`: every sample opened and tokenised before any model loads (parallel, cached); lengths judged.
- `compose`: frozen CLIP/SigLIP + 2-layer MLP projector + a causal LM → a standard `LlavaForConditionalGeneration`
  checkpoint (plus its `LlavaProcessor`); `chat`: the LM's own chat template made image-aware.
- `data`: training samples → model inputs with only the assistant answers supervised.
- `lora`: the training scope: LoRA targets per architecture, parts trained in full (LM layers, vision, merger).
- `trainer`: the HF `Trainer` with a separate projector learning rate, DeepSpeed config checks.
- `callbacks`: complete-marked checkpoints, loss logged at every save, loss curve, eval captions; `plots`: the PNGs.
- `checkpoint`: the metadata every checkpoint carries so that merge/inference need only the adapter folder.
- `merge`: adapter (or trained weights) + base → standalone checkpoint, verified by comparing logits.
- `launch`: torchrun for train.py with a bad input kept to one line.
"""
