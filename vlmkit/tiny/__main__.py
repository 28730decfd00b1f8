"""Build tiny random models into a folder: `python -m vlmkit.tiny OUT_DIR --models siglip,qwen3_lm`.

Prints `name=path` per model (train.sh --tiny reads these lines). `--list` says which script each model is for;
see `vlmkit.tiny` for what the models are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmkit.cli import run_main
from vlmkit.io import InputError
from vlmkit.tiny import BUILDERS, USED_BY


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vlmkit.tiny", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", nargs="?", type=Path, help="models go to OUT_DIR/<name>")
    p.add_argument("--models", default="siglip,qwen3_lm", help=f"comma list of: {', '.join(BUILDERS)}")
    p.add_argument("--list", action="store_true", help="list the models, the script each is for, and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print("tiny random models (they load, train and generate, but say nothing meaningful):")
        for name, build in BUILDERS.items():
            print(f"  {name:12s} for {USED_BY[name]}\n  {'':12s} built by {build.__doc__}")
        return 0
    if args.out_dir is None:
        raise InputError("OUT_DIR: missing (python -m vlmkit.tiny OUT_DIR --models ...)")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown or not names:
        raise InputError(f"--models {args.models}: unknown {', '.join(unknown) or '(empty)'}; "
                         f"choose from {', '.join(BUILDERS)}")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in names:
        print(f"{name}={BUILDERS[name](args.out_dir / name)}")
    return 0


if __name__ == "__main__":
    run_main(main)
