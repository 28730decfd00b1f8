"""dataprocess: look at, filter, convert and re-caption captioning data before training.

Steps (each `python -m dataprocess.<step> --help`):
- `explore`: statistics of a caption data set (JSON + Markdown + PNG plots).
- `filter`: Data-Juicer YAML recipes with Data-Juicer 1.6.1's filter semantics, bad images dropped one by one.
- `convert`: LLaVA / AI Challenger / captions.json / VaseVQA multi-view data -> one training JSONL
  (vlmkit/samples.py), with an image-disjoint train/val split and image-hash dedup.
- `augment`: re-caption images with a local image-to-text model.
"""
