"""What every entry script shares: logging set-up and turning input errors into one-line exits."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Callable

from vlmkit.io import InputError

EXIT_INPUT_ERROR = 2

log = logging.getLogger("vlmkit")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every entry point's --help: defaults shown, the description's line breaks (usage examples) kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # A help text that states its default itself, or a default of None/False (unset flag), needs no suffix.
        if "(default" in (action.help or "") or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


# Deprecation notices that third-party libraries raise about their OWN internals (transformers calling its renamed
# helpers, torch/DeepSpeed internals, ...): a user cannot act on them, and under torchrun every process repeats them
# (hundreds of lines per training run). Filtered by the module that raises them, only for the user-facing commands;
# warnings raised from vlmkit's or the user's code, and every other category, are kept.
THIRD_PARTY = ("transformers", "peft", "accelerate", "deepspeed", "torch", "torchvision", "sentence_transformers",
               "huggingface_hub", "datasets", "qwen_vl_utils", "timm", "tensorboard", "trimesh", "pyrender")


def quiet_third_party_deprecations() -> None:
    """Ignore FutureWarning/DeprecationWarning raised inside THIRD_PARTY modules (see above)."""
    names = "|".join(re.escape(name) for name in THIRD_PARTY)
    module = rf"({names})(\..*)?$"
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=module)


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run an entry point; a bad input prints `error: <one line>` and exits with status 2."""
    quiet_third_party_deprecations()
    try:
        code = main(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
