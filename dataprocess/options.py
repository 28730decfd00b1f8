"""Settings several dataprocess commands share, declared once (`vlmkit.options` fields).

`InputOptions` is how explore and filter open their data set (`dataprocess.dataset.open_input`): one declaration of
`--input_format`, `--image_folder`, `--multiview_dir`, `--views` and `--text_view`, nested in each command's options.
`views_option` is convert's and the input's `--views`: a tuple of known views, whose help states the default as the
user types it (`front,back,...`), not as Python writes a tuple.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from dataprocess.dataset import FORMATS, TEXT_VIEWS, Input, open_input
from vlmkit.ids import VIEWS, parse_views
from vlmkit.options import Options, opt

VIEWS_HELP = "views per object with --multiview_dir / --vasevqa, in this order (comma-separated)"


def views_option(help: str = VIEWS_HELP) -> Any:
    return opt(VIEWS, f"{help} (default: {','.join(VIEWS)})", parse=parse_views)


def cores() -> int:
    return os.cpu_count() or 1


@dataclass
class InputOptions(Options):
    """How a data set is opened: its format, where its images are, what text the operators see."""

    input_format: str = opt("auto", "dj: Data-Juicer JSONL; training: our training JSONL; llava: LLaVA JSON; "
                                    "captions: caption JSON (default: detect)", choices=FORMATS)
    image_folder: str | None = opt(None, "folder relative image paths are resolved against "
                                         "(default: the input file's folder, as in Data-Juicer)")
    multiview_dir: str | None = opt(None, "caption input only: use each record's object views from this folder of "
                                          "VaseVQA object folders as its images")
    views: tuple[str, ...] = views_option()
    text_view: str = opt("answers", "text the operators see for conversation inputs: answers = the gpt turns joined "
                                    "with newlines; dj = Data-Juicer's llava_to_dj layout (default: answers)",
                         choices=TEXT_VIEWS)

    def open(self, path: str | os.PathLike, *, text_key: str, image_key: str, eoc_token: str) -> Input:
        return open_input(path, self.input_format, text_key=text_key, image_key=image_key,
                          image_folder=self.image_folder, text_view=self.text_view, eoc_token=eoc_token,
                          multiview_dir=self.multiview_dir, views=self.views)

    def plan_settings(self) -> dict[str, Any]:
        """What a resumable run records of how its input was opened."""
        return {"text_view": self.text_view, "image_folder": self.image_folder, "multiview_dir": self.multiview_dir,
                "views": list(self.views)}
