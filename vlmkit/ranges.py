"""Declared ranges of numeric settings, checked before any work: one `InputError` line naming the flag or key.

A command declares its ranges once, on its options fields (`vlmkit.options.opt(..., range=Range(1))`, checked by
`check_flag` at construction: `--batch_size -3: must be >= 1`) or its config fields (`check_value`:
`cfg.yaml: batch_size must be >= 1, got -3`). Every float must also be finite: argparse's `type=float` and YAML's
`.nan` / `.inf` both let NaN and infinity through, and NaN makes every comparison false (a NaN learning rate
trains to NaN weights and exits 0; a NaN clipping norm silently turns clipping off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vlmkit.io import InputError, quote


@dataclass(frozen=True)
class Range:
    """lo <= value (lo < value with `lo_open`), value <= hi (value < hi with `hi_open`); None: unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    note: str = ""  # appended in parentheses: what the bound means (`0: no confidence intervals`)
    optional: bool = False  # None is allowed (an unset flag or a null key)

    def describe(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {num(self.hi)}"
        if lo and hi:
            text = f"in {'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}{')' if self.hi_open else ']'}"
        else:
            text = lo or hi or "a finite number"
        return text + (f" ({self.note})" if self.note else "")

    def problem(self, value: Any) -> str | None:
        """Why `value` is outside the range, or None."""
        if value is None:
            return None if self.optional else "must be set"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {quote(value, 60)}"
        if not math.isfinite(value):
            return f"must be a finite number {self.describe()}, got {value}"
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return f"must be {self.describe()}"
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return f"must be {self.describe()}"
        return None


POSITIVE = Range(1)          # batch sizes, counts
NON_NEGATIVE = Range(0)      # tolerances, resamples, worker counts


def check_value(value: Any, name: str, where: str, rng: Range) -> Any:
    """A config key: `<where>: <name> must be >= 1, got -3`."""
    problem = rng.problem(value)
    if problem:
        got = "" if "got" in problem else f", got {quote(value, 60)}"
        raise InputError(f"{where}: {name} {problem}{got}")
    return value


def check_flag(value: Any, flag: str, rng: Range) -> Any:
    """A command-line flag: `--batch_size -3: must be >= 1`."""
    problem = rng.problem(value)
    if problem:
        raise InputError(f"{flag} {value}: {problem}")
    return value
