"""Benchmark evaluation of VLMs (base, LoRA adapter, merged): TextVQA, MMBench and generic VQA sets.

`tasks` loads and validates a question set, `evaluate` (eval_vqa.py's `VqaOptions` and `run`) answers it (one chunk
per GPU) through the generation backends and merges chunks, `textvqa_scoring` / `mmbench_scoring` score as
lmms-eval / VLMEvalKit do, `results` writes results.json with a bootstrap CI, `compare` builds the md/json/HTML
comparison of several results (`compare_runs`: compare_vqa.py's options and run). Manual: docs/vqa.md.
"""
