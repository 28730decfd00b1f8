"""What every entry script shares: logging set-up and turning input errors into one-line exits."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from vlmkit.io import InputError

EXIT_INPUT_ERROR = 2

log = logging.getLogger("vlmkit")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run an entry point; a bad input prints `error: <one line>` and exits with status 2."""
    try:
        code = main(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
