"""The caption prompt: one place for generation, training data and conversion, filled in with the views used.

VaseVQA-3D's qwen.py asks in Chinese for a one-line caption naming shape, technique, date, decoration and find-spot,
in the style of its ground truth. We ask for the same in English. A user prompt file may use the placeholders
`{views}` (e.g. "front, back, top"), `{num_views}` (e.g. "3") and `{views_phrase}` (e.g. "3 views: front, back, top");
they are replaced textually, so any other braces in the file are left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmkit.io import InputError, read_text

_REQUIREMENTS = """Write one concise, accurate caption in the style of:
"Athenian black-figure lekythos, c. 525-475 BCE, depicting Herakles and the boar; Marathon, Attica."

Requirements:
1. Name the vessel shape (e.g. lekythos, amphora, hydria).
2. Name the painting technique (e.g. black-figure, red-figure).
3. Give the approximate date.
4. Briefly describe the main decoration.
5. If it can be identified, give the likely find-spot.
Answer with the caption only."""

MULTIVIEW_PROMPT = ("Please analyse these views of an ancient Greek vase. I have provided {views_phrase}.\n\n"
                    + _REQUIREMENTS)
SINGLE_IMAGE_PROMPT = "Please analyse this image of an ancient Greek vase.\n\n" + _REQUIREMENTS


def load_prompt_template(prompt_file: str | os.PathLike | None, default: str = MULTIVIEW_PROMPT) -> str:
    """The prompt template from `--prompt_file` (UTF-8 text), or `default`."""
    if prompt_file is None:
        return default
    path = Path(prompt_file)
    text = read_text(path, "prompt file").strip()
    if not text:
        raise InputError(f"{path}: prompt file is empty")
    return text


def build_prompt(template: str, views: list[str] | tuple[str, ...]) -> str:
    """Fill the placeholders with the loaded views, in the order the images are given to the model."""
    views = list(views)
    noun = "view" if len(views) == 1 else "views"
    phrase = f"{len(views)} {noun}: {', '.join(views)}"
    return (template.replace("{views_phrase}", phrase)
            .replace("{num_views}", str(len(views)))
            .replace("{views}", ", ".join(views)))
