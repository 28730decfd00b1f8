"""Decoding settings shared by both backends (and recorded in every report and provenance field)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vlmkit.options import Options, opt
from vlmkit.ranges import POSITIVE, Range


@dataclass(frozen=True)
class GenerationSettings(Options):
    """`temperature == 0` means greedy decoding (deterministic: batched equals unbatched).

    Also the decoding flags of every generating command (nested in `ModelOptions`, listed in its group): one
    declaration of each flag, its default and its range."""

    max_new_tokens: int = opt(256, range=POSITIVE)
    temperature: float = opt(0.0, "0 = greedy (reproducible)", range=Range(0))
    top_p: float = opt(1.0, range=Range(0, 1, lo_open=True))
    top_k: int = opt(50)
    repetition_penalty: float = opt(1.0)
    num_beams: int = opt(1, range=POSITIVE)
    seed: int = opt(0)

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for transformers' `generate`; explicit, so the checkpoint's defaults do not leak in."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                                  "num_beams": self.num_beams, "repetition_penalty": self.repetition_penalty}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:  # neutral values, so transformers does not warn about sampling flags from generation_config.json
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "do_sample": self.do_sample}
