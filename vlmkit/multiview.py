"""Discovering multi-view object folders and loading their views.

Layout (VaseVQA-3D): `<input_dir>/<UUID>_<n>_<collection>_textured_4k.glb_shaded/{front,back,...}.jpg`.
A folder that holds images directly is one object; its views are the image files named after a view.
A missing or unreadable view is skipped with a reason; an object with no readable view is a failure
for the caller to record, never silently dropped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from vlmkit.ids import IMAGE_EXTENSIONS, VIEWS, item_id, object_image_name
from vlmkit.io import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectFolder:
    """One object: its id, its folder and the record name (`images[0]`) VaseVQA-3D's qwen.py writes for it."""

    id: str
    path: Path
    image_name: str
    view_files: dict[str, Path] = field(default_factory=dict, compare=False, hash=False)

    def views_in_order(self, views: tuple[str, ...] | list[str] = VIEWS) -> list[tuple[str, Path]]:
        """The requested views that exist on disk, in the requested order."""
        return [(v, self.view_files[v]) for v in views if v in self.view_files]


def _view_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS and entry.stem.lower() in VIEWS:
            files.setdefault(entry.stem.lower(), entry)
    return files


def object_folder(path: str | os.PathLike) -> ObjectFolder:
    """Describe one object folder (used by `--single_model`)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: object folder not found")
    return ObjectFolder(item_id(path.name), path, object_image_name(path.name), _view_files(path))


def discover_objects(input_dir: str | os.PathLike) -> list[ObjectFolder]:
    """All object folders under `input_dir`, sorted by name (a deterministic order for sharding).

    Every sub-folder is an object, also an empty one: the caller reports it as a failure. Two folders
    with the same id are an input error, since their captions could not be told apart.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    objects = [object_folder(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    seen: dict[str, Path] = {}
    for obj in objects:
        if obj.id in seen:
            raise InputError(f"{obj.path}: object id {obj.id} is also the id of {seen[obj.id]}")
        seen[obj.id] = obj.path
    return objects


def load_view_images(obj: ObjectFolder, views: tuple[str, ...] | list[str] = VIEWS):
    """Open the requested views as RGB PIL images.

    Returns (views loaded, images, problems) where problems are one-line reasons for each requested
    view that is missing or unreadable; the caller logs them and fails the object if nothing loaded.
    """
    from vlmkit.images import ImageProblem, open_rgb

    loaded_views: list[str] = []
    images = []
    problems: list[str] = []
    for view in views:
        path = obj.view_files.get(view)
        if path is None or not path.is_file():
            problems.append(f"{obj.path}: view {view} missing")
            continue
        try:
            images.append(open_rgb(path))
            loaded_views.append(view)
        except ImageProblem as problem:
            problems.append(str(problem))
    return loaded_views, images, problems


def find_object_dirs_by_id(images_dir: str | os.PathLike) -> dict[str, ObjectFolder]:
    """Map item id -> object folder, for joining caption records with their renders."""
    return {obj.id: obj for obj in discover_objects(images_dir)}
