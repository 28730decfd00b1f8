"""Tiny random models for `sh train.sh --tiny`: the whole training pipeline on CPU in seconds.

    python -m vlmkit.training.demo DIR [--arch llava|qwen2_5_vl]

writes DIR/vision (SigLIP) + DIR/lm (Qwen3) for llava, or DIR/base (Qwen2.5-VL) for qwen2_5_vl. The builders are
the test suite's (tests/fixtures/), so the demo needs a repository checkout, which train.sh is part of anyway.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build(out: Path, arch: str) -> dict[str, Path]:
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests" / "fixtures").is_dir():
        raise SystemExit(f"error: {root}/tests/fixtures not found: the tiny demo runs from a repository checkout")
    sys.path.insert(0, str(root))
    if arch == "llava":
        from tests.fixtures.qwen_lm import build_tiny_qwen_lm
        from tests.fixtures.siglip import build_tiny_siglip

        return {"vision": build_tiny_siglip(out / "vision"), "lm": build_tiny_qwen_lm(out / "lm", family="qwen3")}
    from tests.fixtures.qwen2_5_vl import build_tiny_qwen2_5_vl

    return {"base": build_tiny_qwen2_5_vl(out / "base")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="build tiny random models for the training demo")
    p.add_argument("out_dir")
    p.add_argument("--arch", choices=["llava", "qwen2_5_vl"], default="llava")
    args = p.parse_args(argv)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name, path in build(Path(args.out_dir), args.arch).items():
        print(f"{name}={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
