"""The live caption panel: caption the object on screen with a local model, through the one transformers backend.

The models a browser may pick are the folders given on the command line (``--live_model``), never a path typed into
the page. A model is loaded on first use and kept (one at a time: picking another replaces it); generation is
serialised, since one CPU or GPU model answers one request at a time anyway. The caption is returned to the page
only: nothing is written into the results folder.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from vlmkit.io import InputError
from vlmkit.prompt import MULTIVIEW_PROMPT, build_prompt

MAX_PROMPT_CHARS = 4000


class LiveCaptioner:
    """Lazily loaded HFCaptioner per chosen model folder."""

    def __init__(self, model_dirs: list[str | os.PathLike], *, device: str = "auto", max_new_tokens: int = 128):
        from vlmkit.generation.hf_backend import require_base_model_dir

        # the cheap checks (config parses, weights complete) run at start, so a bad folder is an error line there
        self.models = [require_base_model_dir(p, "--live_model") for p in model_dirs]
        self.device = device
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()
        self._loaded: tuple[int, Any] | None = None

    def names(self) -> list[str]:
        return [p.name for p in self.models]

    @staticmethod
    def default_prompt(views: list[str]) -> str:
        return build_prompt(MULTIVIEW_PROMPT, views)

    def caption(self, model_index: int, view_files: dict[str, Path], prompt: str) -> dict[str, Any]:
        """One caption of the object's views; InputError for a bad choice or an object without readable views."""
        from vlmkit.generation.hf_backend import HFCaptioner
        from vlmkit.generation.runner import CaptionRequest
        from vlmkit.generation.sampling import GenerationSettings
        from vlmkit.images import ImageProblem, open_rgb

        if not 0 <= model_index < len(self.models):
            raise InputError(f"model must be 0..{len(self.models) - 1}")
        if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"the prompt must be 1..{MAX_PROMPT_CHARS} characters")
        views, images = [], []
        for view, path in view_files.items():
            try:
                images.append(open_rgb(path))
                views.append(view)
            except ImageProblem:
                continue
        if not images:
            raise InputError("this object has no readable view to caption")
        with self._lock:
            if self._loaded is None or self._loaded[0] != model_index:
                self._loaded = None  # free the previous model before loading the next
                settings = GenerationSettings(max_new_tokens=self.max_new_tokens)
                self._loaded = (model_index, HFCaptioner(self.models[model_index], settings=settings,
                                                         device=self.device, what="--live_model"))
            start = time.perf_counter()
            text = self._loaded[1].caption([CaptionRequest(prompt=prompt, images=images,
                                                           paths=[view_files[v] for v in views], views=views)])[0]
        return {"model": self.models[model_index].name, "caption": text, "views": views,
                "seconds": round(time.perf_counter() - start, 3)}
