"""What gets captioned: multi-view object folders, flat folders of images, or training samples.

Every item is an `ObjectFolder` (from `vlmkit.multiview`) plus the views to load, so that one loader
(`load_view_images`) and one id rule serve all inputs: a flat image is an object with the single view `image`, a
training sample an object with views `image1`, `image2`, ...
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.ids import IMAGE_EXTENSIONS, item_id
from vlmkit.io import InputError
from vlmkit.multiview import ObjectFolder, discover_objects, load_view_images, object_folder

FLAT_VIEW = "image"
LAYOUTS = ("auto", "multiview", "flat")


@dataclass(frozen=True)
class CaptionItem:
    """One thing to caption: an object, the views to show the model (in order), and what to do if some are missing.

    `require_all=False` (multi-view objects): a missing or unreadable view is skipped with a warning; the item fails
    only if no view is readable. `require_all=True` (training samples): the item fails if any image is unreadable,
    since its conversation refers to every image. `loader` (optional) replaces `load_item`'s file loading, for
    images that are not files (e.g. base64 cells of a benchmark TSV).
    """

    obj: ObjectFolder
    views: tuple[str, ...]
    require_all: bool = False
    payload: Any = None
    loader: Callable[[CaptionItem], LoadedItem] | None = None

    @property
    def id(self) -> str:
        return self.obj.id

    @property
    def image_name(self) -> str:
        return self.obj.image_name


@dataclass
class LoadedItem:
    item: CaptionItem
    views: list[str]
    images: list  # PIL images, in the order of `views`
    paths: list[Path]
    problems: list[str]


def load_item(item: CaptionItem) -> LoadedItem:
    """Open the item's images; problems are one-line reasons (missing or unreadable view)."""
    if item.loader is not None:
        return item.loader(item)
    if not item.obj.view_files:  # one clear reason instead of one "missing" per view
        names = ", ".join(f"{v}.jpg" for v in item.views)
        return LoadedItem(item, [], [], [], [f"{item.obj.path}: no view images in the folder (expected {names})"])
    views, images, problems = load_view_images(item.obj, item.views)
    paths = [item.obj.view_files[v] for v in views]
    return LoadedItem(item, views, images, paths, problems)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def flat_image_items(input_dir: str | os.PathLike) -> list[CaptionItem]:
    """One item per image file directly in `input_dir`; its record name is the file name."""
    root = Path(input_dir)
    items: list[CaptionItem] = []
    seen: dict[str, Path] = {}
    for path in sorted(p for p in root.iterdir() if _is_image(p)):
        iid = item_id(path.name)
        if iid in seen:
            raise InputError(f"{path}: image id {iid} is also the id of {seen[iid]}")
        seen[iid] = path
        obj = ObjectFolder(iid, root, path.name, {FLAT_VIEW: path})
        items.append(CaptionItem(obj, (FLAT_VIEW,)))
    return items


def detect_layout(input_dir: str | os.PathLike) -> str:
    """`multiview` when `input_dir` holds object folders, `flat` when it holds images directly."""
    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    has_dirs = any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())
    has_images = any(_is_image(p) for p in root.iterdir())
    if has_dirs and has_images:
        raise InputError(f"{root}: holds both image files and sub-folders; pass --input_layout multiview or flat")
    if has_images:
        return "flat"
    if has_dirs:
        return "multiview"
    raise InputError(f"{root}: no object folders or images found")


def discover_items(input_dir: str | os.PathLike | None, views: tuple[str, ...], layout: str = "auto",
                   single_object: str | os.PathLike | None = None) -> tuple[list[CaptionItem], str]:
    """The items to caption, in a deterministic order (sorted by name), and the layout used."""
    if single_object is not None:
        return [CaptionItem(object_folder(single_object), views)], "multiview"
    if layout not in LAYOUTS:
        raise InputError(f"--input_layout {layout}: choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(input_dir)
    if layout == "flat":
        items = flat_image_items(input_dir)
    else:
        items = [CaptionItem(obj, views) for obj in discover_objects(input_dir)]
    if not items:
        raise InputError(f"{input_dir}: no {'images' if layout == 'flat' else 'object folders'} found")
    return items, layout
