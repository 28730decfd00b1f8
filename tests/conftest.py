"""Shared pytest fixtures: tiny models are built once per session in a temp dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def _private_embedding_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the user's ~/.cache: every test gets its own embedding cache folder (subprocesses inherit it)."""
    folder = tmp_path_factory.mktemp("vlmkit-cache")
    monkeypatch.setenv("VLMKIT_CACHE_DIR", str(folder))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture()
def examples_copy(tmp_path: Path) -> Path:
    """A writable copy of examples/ (tests may corrupt or delete files in it)."""
    dst = tmp_path / "examples"
    shutil.copytree(EXAMPLES, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.tokenizer import build_tokenizer

    out = tmp_path_factory.mktemp("tiny_tokenizer")
    build_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.qwen2_5_vl import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny_qwen2_5_vl") / "Qwen2.5-VL-tiny")


@pytest.fixture(scope="session")
def tiny_internvl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.internvl import build_tiny_internvl

    return build_tiny_internvl(tmp_path_factory.mktemp("tiny_internvl") / "InternVL-tiny-hf")


# --- training (issue 4): tiny SigLIP vision tower and Qwen2/Qwen3 causal LMs for the LLaVA composition -------
@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.siglip import build_tiny_siglip

    return build_tiny_siglip(tmp_path_factory.mktemp("tiny_siglip"))


@pytest.fixture(scope="session")
def tiny_qwen2_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.qwen_lm import build_tiny_qwen_lm

    return build_tiny_qwen_lm(tmp_path_factory.mktemp("tiny_qwen2_lm"), family="qwen2")


@pytest.fixture(scope="session")
def tiny_qwen3_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.qwen_lm import build_tiny_qwen_lm

    return build_tiny_qwen_lm(tmp_path_factory.mktemp("tiny_qwen3_lm"), family="qwen3")


# --- training (issue 14): non-Qwen LMs with their own chat templates and BOS behaviour --------------------------
@pytest.fixture(scope="session")
def tiny_chat_lm_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"llama": ..., "gemma": ..., "phi3": ...}: demo.tiny.chat_lms builders."""
    from demo.tiny.chat_lms import FAMILIES, build_tiny_chat_lm

    out = tmp_path_factory.mktemp("tiny_chat_lms")
    return {family: build_tiny_chat_lm(out / family, family) for family in FAMILIES}


# --- retrieval (issue 11): word-level tiny CLIP / SigLIP dual encoders, synthetic shapes pairs, one trained run ---
@pytest.fixture(scope="session")
def tiny_clip_words_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.word_clip import build_tiny_clip_words

    return build_tiny_clip_words(tmp_path_factory.mktemp("tiny_clip_words"))


@pytest.fixture(scope="session")
def tiny_siglip_words_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.tiny.word_clip import build_tiny_siglip_words

    return build_tiny_siglip_words(tmp_path_factory.mktemp("tiny_siglip_words"))


@pytest.fixture(scope="session")
def shape_pairs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 coloured-shape images; train.jsonl (48 pairs) and val.jsonl (16 pairs, other images)."""
    from demo.tiny.word_clip import make_shape_pairs

    return make_shape_pairs(tmp_path_factory.mktemp("shape_pairs"))


RETRIEVAL_TINY_OVERRIDES = [
    "epochs=12", "batch_size=16", "learning_rate=1e-2", "warmup_ratio=0", "lora_r=8", "lora_alpha=16",
    "lora_target_modules=q_proj,k_proj,v_proj,out_proj,fc1,fc2,text_projection,visual_projection",
    "logging_steps=1", "save_steps=18", "save_total_limit=null",
]


@pytest.fixture(scope="session")
def retrieval_run(tmp_path_factory: pytest.TempPathFactory, tiny_clip_words_dir: Path, shape_pairs_dir: Path) -> Path:
    """The tiny word-level CLIP fine-tuned with LoRA for 36 steps (12 epochs of 3 batches of 16) on the shapes:
    the output folder of `retrieval.py train` (adapter, merged/, checkpoints/, metrics.jsonl, ...)."""
    import sys

    sys.path.insert(0, str(REPO))
    import retrieval

    out = tmp_path_factory.mktemp("retrieval_run") / "output"
    config = out.parent / "tiny.yaml"
    config.write_text(f"model_name_or_path: {tiny_clip_words_dir}\ndata_path: {shape_pairs_dir / 'train.jsonl'}\n"
                      f"val_data_path: {shape_pairs_dir / 'val.jsonl'}\noutput_dir: {out}\n")
    assert retrieval.main(["train", str(config), "--config_override", *RETRIEVAL_TINY_OVERRIDES]) == 0
    return out
