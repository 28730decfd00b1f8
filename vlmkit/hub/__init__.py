"""The models the scripts default to, downloading them into ./models (download_models.py), and checking, offline,
that each folder is complete and loadable before a long run.

- the registry (name -> local folder, Hugging Face id, ModelScope id, kind, which scripts use it) is
  `vlmkit.model_registry`, below both the loaders and this package.
- `check`: present / complete (config, every weights shard of the index, tokenizer and processor files) / loadable.
- `download`: `huggingface_hub.snapshot_download` or `modelscope.snapshot_download`, imported lazily.
"""
