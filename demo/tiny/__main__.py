"""Build demo models into a folder: `python -m demo.tiny OUT_DIR --models siglip,qwen3_lm`.

`--size tiny` (default): tiny random models for tests and demos (see `demo.tiny`). `--size real`: the published
architectures of released checkpoints with random weights (see `demo.tiny.real`), for costs at real sizes:

    python -m demo.tiny OUT --models clip-vit-base-patch32 --size real --dtype bfloat16
    python -m demo.tiny --size real --models all --count_only     # parameter counts on the meta device

Prints `name=path` per model (train.sh --tiny reads these lines). `--list` says which script each model is for;
see `demo.tiny` for what the models are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from demo.tiny import BUILDERS, USED_BY
from vlmkit.cli import run_main
from vlmkit.io import InputError

DTYPES = ("float32", "bfloat16", "float16")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demo.tiny", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", nargs="?", type=Path, help="models go to OUT_DIR/<name>")
    p.add_argument("--models", default=None,
                   help="comma list of builder names (--list); with --size real 'all' builds every preset "
                        "(default: siglip,qwen3_lm for tiny; required for real)")
    p.add_argument("--size", choices=("tiny", "real"), default="tiny",
                   help="tiny random models, or the released architectures at real size (default tiny)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="weight dtype of --size real (default float32)")
    p.add_argument("--count_only", action="store_true",
                   help="--size real: print each preset's parameter count (meta device) against the published one")
    p.add_argument("--list", action="store_true",
                   help="list the models (of --size), the script each is for (tiny) or its source (real), and exit")
    return p


def _real(args: argparse.Namespace) -> int:
    from vlmkit.model_configs import PRESETS, count_params

    if args.list:
        for name, preset in PRESETS.items():
            print(f"{name:28s} {preset.config_source}")
        return 0
    if not args.models:
        raise InputError(f"--models: missing; choose from all, {', '.join(PRESETS)}")
    names = list(PRESETS) if args.models.strip() == "all" else [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in PRESETS]
    if unknown or not names:
        raise InputError(f"--models {args.models}: unknown {', '.join(unknown) or '(empty)'}; "
                         f"choose from all, {', '.join(PRESETS)}")
    if args.count_only:
        bad = 0
        for name in names:
            preset, count = PRESETS[name], count_params(name)
            published = (f"{preset.published_params:,}" if preset.published_params is not None
                         else preset.published_rounded)
            ok = preset.matches(count)
            bad += not ok
            print(f"{name:28s} {count:>15,} published {published:>15s} {'OK' if ok else 'MISMATCH'}  "
                  f"({preset.count_source})")
        return 1 if bad else 0
    if args.out_dir is None:
        raise InputError("OUT_DIR: missing (python -m demo.tiny OUT_DIR --size real --models ...)")
    from demo.tiny.real_folders import build_real

    for name in names:
        print(f"{name}={build_real(name, args.out_dir / name, dtype=args.dtype)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.size == "real":
        return _real(args)
    if args.count_only or args.dtype != "float32":
        raise InputError("--count_only/--dtype: only with --size real")
    if args.list:
        print("tiny random models (they load, train and generate, but say nothing meaningful):")
        for name, build in BUILDERS.items():
            print(f"  {name:12s} for {USED_BY[name]}\n  {'':12s} built by {build.__doc__}")
        return 0
    if args.out_dir is None:
        raise InputError("OUT_DIR: missing (python -m demo.tiny OUT_DIR --models ...)")
    models = args.models or "siglip,qwen3_lm"
    names = [n.strip() for n in models.split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown or not names:
        raise InputError(f"--models {models}: unknown {', '.join(unknown) or '(empty)'}; "
                         f"choose from {', '.join(BUILDERS)}")
    for name in names:
        print(f"{name}={BUILDERS[name](args.out_dir / name)}")
    return 0


if __name__ == "__main__":
    run_main(main)
