"""Decoding settings shared by both backends (and recorded in every report and provenance field)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vlmkit.io import InputError


@dataclass(frozen=True)
class GenerationSettings:
    """`temperature == 0` means greedy decoding (deterministic: batched equals unbatched)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    num_beams: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError(f"--max_new_tokens {self.max_new_tokens}: must be at least 1")
        if self.temperature < 0:
            raise InputError(f"--temperature {self.temperature}: must be >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise InputError(f"--top_p {self.top_p}: must be in (0, 1]")
        if self.num_beams < 1:
            raise InputError(f"--num_beams {self.num_beams}: must be at least 1")

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
