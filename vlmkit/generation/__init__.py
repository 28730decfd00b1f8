"""Caption generation shared by qwen.py, internvl.py, caption.py, test.sh and dataprocess.augment.

One engine: items (multi-view objects, flat images or training samples) are loaded, batched, captioned by a
backend (any transformers image-text-to-text checkpoint, or lmdeploy for InternVL on GPUs), written incrementally
and atomically, and summarised in a report. The modules:

- `items`: what to caption (object folders, flat images) and how its images are loaded.
- `runner`: the batching loop (next batch prepared while one generates), progress bar, failures, the report.
- `sampling`: decoding settings shared by both backends.
- `outputs`: VaseVQA-3D's caption file, written after every batch; resume and no-silent-overwrite rules.
- `shards`: deterministic shards for many GPUs/machines and the merge step.
- `hf_backend`, `lmdeploy_backend`: the in-process model backends (transformers; lmdeploy for InternVL on GPUs).
- `engines`: `--backend openai|vllm` for every captioning CLI; `openai_backend` (an OpenAI-compatible API,
  `--concurrency` requests in flight, retries), `vllm_backend` (vLLM in-process, GPU), `export_check` (is a
  checkpoint ready for an engine; does an adapter match its base at all).
- `captioning`: the captioning command (qwen.py, internvl.py, caption.py): `CaptionOptions` and `run(options)`.
- `model_setup`: the model group (`ModelOptions`) and, from a command's options, its checks, name and captioner;
  `HFOptions` (hf_backend), `EngineOptions` (engines), `ShardOptions` (shards) and `GenerationSettings` (sampling)
  are the other groups, each flag declared once.
- `cli`: transitional argparse helpers for dataprocess.augment (until it nests the options groups).
"""
