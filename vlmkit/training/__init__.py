"""Training a captioning VLM: compose a LLaVA checkpoint, LoRA fine-tune it (or Qwen2.5-VL), merge the adapter.

The entry scripts (`train.py`, `merge_lora_weights.py`) are thin; the logic lives in small modules here:

- `compose`: frozen CLIP/SigLIP + 2-layer MLP projector + Qwen LM → a standard `LlavaForConditionalGeneration`
  checkpoint (plus its `LlavaProcessor` and chat template) that `AutoModelForImageTextToText` loads.
- `data`: training samples → model inputs with only the assistant answers supervised; image pre-flight checks.
- `lora`: which modules get LoRA (language model only) and which are trained in full (the projector).
- `trainer`: the HF `Trainer` with a separate projector learning rate, DeepSpeed config checks.
- `checkpoint`: the metadata every checkpoint carries so that merge/inference need only the adapter folder.
- `merge`: adapter + base → standalone checkpoint, verified by comparing logits.
- `demo`: tiny random models for `sh train.sh --tiny` (the test suite's builders).
"""
