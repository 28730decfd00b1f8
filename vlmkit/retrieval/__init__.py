"""Text-image retrieval: fine-tune a CLIP/SigLIP dual encoder, evaluate it, index images with FAISS, serve search.

    python retrieval.py train configs/retrieval/clip_text_to_image.yaml [--config_override key=value ...]
    python retrieval.py eval --model OUT/merged --data val.jsonl --image_root D [--zero_shot BASE] --output r.json
    python retrieval.py index --model OUT/merged --images DIR_or_JSONL --output INDEX_DIR
    python retrieval.py search --index INDEX_DIR --query "red-figure hydria" -k 10
    python retrieval.py serve --index INDEX_DIR --port 8000

Modules: `config` (YAML keys, defaults < YAML < overrides), `data` (pair JSONL, image preflight, eval grouping),
`model` (CLIP/SigLIP detection, sentence-transformers loading, LoRA, merge), `losses` (InfoNCE via
sentence-transformers, SigLIP's sigmoid loss), `metrics` (chunked ranking metrics, bootstrap CIs), `evaluate`,
`train`, `plot`, `index` (FAISS), `search`, `service` (FastAPI). See docs/retrieval.md.
"""
