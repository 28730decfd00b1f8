"""What every filter operator shares: parameter checking and Data-Juicer's keep rule.

Mirrors `data_juicer/ops/base_op.py` (py-data-juicer 1.6.1), class `Filter`:
- `get_keep_boolean(val, min, max)`: val >= min (or > min when `min_closed_interval` is false) and val <= max
  (or < max when `max_closed_interval` is false); `reversed_range` first flips both closedness flags, then
  negates the result, so by default it keeps (-inf, min] and [max, +inf).
- A stat already present for a sample is never recomputed: when a recipe lists an operator twice (say two
  `character_repetition_filter`s with different `rep_len`), the second one reuses the first one's
  `char_rep_ratio`. We keep that behaviour (it is what Data-Juicer outputs) and warn at recipe load.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dataprocess.dj_text import refine_words, split_words
from vlmkit.images import ImageProblem  # noqa: F401 - re-exported for the operators
from vlmkit.io import InputError, quote

# Base-class parameters of Data-Juicer's OP/Filter that only steer its execution engine (batching, Ray, GPUs,
# caching). They do not change which samples are kept, so a recipe may carry them; we accept and ignore them.
EXECUTION_ONLY_PARAMS = frozenset({
    "accelerator", "adaptive_batching", "auto_op_parallelism", "batch_mode", "batch_size", "cpu_required",
    "gpu_required", "index_key", "input_columns", "mem_required", "memory", "num_cpus", "num_gpus", "num_proc",
    "output_columns", "ray_execution_mode", "runtime_env", "skip_op_error", "stats_export_path", "turbo",
    "work_dir",
})
# Filter base parameters that change the keep rule; supported exactly.
RANGE_PARAMS = {"min_closed_interval": True, "max_closed_interval": True, "reversed_range": False}


@dataclass
class Sample:
    """What an operator sees of one sample: the text view and the resolved image paths.

    The word lists are computed once per sample and shared by the word operators (Data-Juicer shares them
    through its op-fusion context the same way; the result does not depend on it).
    """

    text: str
    images: tuple[str, ...] = ()
    _words: list[str] | None = field(default=None, repr=False)
    _lower_words: list[str] | None = field(default=None, repr=False)

    def words(self) -> list[str]:
        """Data-Juicer's refined words (split, special characters stripped), as words_num_filter counts them."""
        if self._words is None:
            self._words = refine_words(split_words(self.text))
        return self._words

    def lower_words(self) -> list[str]:
        """Refined words with lower-casing first, as word_repetition_filter uses them. For ASCII text, lowering
        and stripping commute (no letter is special, no special character changes case), so the cached words
        are reused."""
        if self._lower_words is None:
            if self.text.isascii():
                self._lower_words = [w.lower() for w in self.words()]
            else:
                self._lower_words = refine_words(split_words(self.text), lower_case=True)
        return self._lower_words


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(value: Any, name: str, where: str) -> float | int:
    """A finite int or float. NaN would make every comparison false (every sample dropped, NaN in the summary) and
    an infinite bound is what leaving the parameter out already means, so both are refused."""
    if not _is_number(value):
        raise InputError(f"{where}: '{name}' must be a number, got {quote(value)}")
    if not math.isfinite(value):
        raise InputError(f"{where}: '{name}' must be a finite number, got {value} (leave it out for no bound)")
    return value


def check_positive_int(value: Any, name: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{where}: '{name}' must be a positive integer, got {quote(value)}")
    return value


def check_bool(value: Any, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{where}: '{name}' must be true or false, got {quote(value)}")
    return value


def fmt_bound(value: float | int) -> str:
    return "inf" if value == sys.maxsize else f"{value:g}" if isinstance(value, float) else str(value)


class FilterOp:
    """A Data-Juicer filter: compute its stats into the sample's stats dict, then decide keep or drop."""

    name: ClassVar[str]
    stat_keys: ClassVar[tuple[str, ...]]
    # parameter name -> default (Data-Juicer's defaults)
    defaults: ClassVar[dict[str, Any]]
    uses_images: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | None, index: int, where: str):
        params = dict(params or {})
        self.index = index
        self.where = where
        for key in ("text_key", "image_key", "image_bytes_key"):
            if key in params:
                raise InputError(f"{where}: per-operator '{key}' is not supported; set 'text_keys' / 'image_key' "
                                 f"at the top level of the recipe")
        unknown = sorted(k for k in params if k not in self.defaults and k not in RANGE_PARAMS
                         and k not in EXECUTION_ONLY_PARAMS)
        if unknown:
            raise InputError(f"{where}: unknown parameter(s) {', '.join(unknown)} for {self.name}; "
                             f"it takes {', '.join(sorted(self.defaults))} (+ {', '.join(RANGE_PARAMS)})")
        values = {**self.defaults, **{k: v for k, v in params.items() if k in self.defaults and v is not None}}
        self.params = values
        ranges = {k: check_bool(params.get(k, d), k, where) for k, d in RANGE_PARAMS.items()}
        self.reversed_range = ranges["reversed_range"]
        self.min_closed = ranges["min_closed_interval"] != self.reversed_range
        self.max_closed = ranges["max_closed_interval"] != self.reversed_range
        self.range_params = ranges
        self.setup(values)

    def setup(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def compute(self, sample: Sample, stats: dict[str, Any], image_cache: dict) -> None:
        raise NotImplementedError

    def keep(self, stats: dict[str, Any]) -> bool:
        raise NotImplementedError

    def reason(self, stats: dict[str, Any]) -> str:
        raise NotImplementedError

    def in_range(self, val: float | int, min_val: float | int, max_val: float | int) -> bool:
        """Data-Juicer's `Filter.get_keep_boolean`."""
        ok = val >= min_val if self.min_closed else val > min_val
        ok = ok and (val <= max_val if self.max_closed else val < max_val)
        return not ok if self.reversed_range else ok

    def range_text(self, min_val: float | int, max_val: float | int) -> str:
        lo = "[" if self.min_closed else "("
        hi = "]" if self.max_closed else ")"
        inner = f"{lo}{fmt_bound(min_val)}, {fmt_bound(max_val)}{hi}"
        return f"in {inner}, dropped by reversed_range" if self.reversed_range else f"not in {inner}"

    def kept_range(self, min_val: float | int, max_val: float | int) -> str:
        """The values this op keeps, e.g. "in [6, 60]" or, with reversed_range, "outside (6, 60)"."""
        lo = "[" if self.min_closed else "("
        hi = "]" if self.max_closed else ")"
        inner = f"{lo}{fmt_bound(min_val)}, {fmt_bound(max_val)}{hi}"
        return f"outside {inner}" if self.reversed_range else f"in {inner}"

    def describe(self) -> dict[str, Any]:
        out = {"op": self.name, "index": self.index, "params": dict(self.params)}
        if self.range_params != RANGE_PARAMS:
            out["params"].update(self.range_params)
        return out
