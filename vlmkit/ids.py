"""The item-id rule shared by generation, evaluation and data conversion.

The VaseVQA-3D layout names each object folder `<UUID>_<n>_<collection>_textured_4k.glb_shaded` and
each caption record `<UUID>_<n>_<collection>.jpg`. Both refer to the same object, whose id is
`<UUID>_<n>`. Records are always matched by that id, never by their position in a file.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from vlmkit.io import InputError

VIEWS: tuple[str, ...] = ("front", "back", "left", "right", "top", "bottom")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# <UUID>_<n> at the start of a name; a UUID uses hyphens, never underscores.
_ID_RE = re.compile(r"^(?P<uuid>[^_]+)_(?P<n>\d+)(?=_|$)")
# <UUID>_<n>_<collection> at the start of an object folder's name.
_IMAGE_NAME_RE = re.compile(r"^(?P<id>[^_]+_\d+)(?P<collection>_[^_.]+)?")


def _stem(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    lower = base.lower()
    for ext in IMAGE_EXTENSIONS:
        if lower.endswith(ext):
            return base[: -len(ext)]
    return base


def item_id(name: str) -> str:
    """Return the object id of an image or folder name.

    >>> item_id("0a1b-2c_3_ac001001.jpg")
    '0a1b-2c_3'
    >>> item_id("multiview/0a1b-2c_3_ac001001_textured_4k.glb_shaded")
    '0a1b-2c_3'
    >>> item_id("image1.jpg")  # names outside the UUID_n rule keep their stem
    'image1'
    """
    stem = _stem(name)
    match = _ID_RE.match(stem)
    return f"{match['uuid']}_{match['n']}" if match else stem


def object_image_name(folder_name: str) -> str:
    """The record name VaseVQA-3D's qwen.py writes for an object folder.

    >>> object_image_name("0a1b-2c_3_ac001001_textured_4k.glb_shaded")
    '0a1b-2c_3_ac001001.jpg'
    >>> object_image_name("vase7")
    'vase7.jpg'
    """
    base = PurePosixPath(folder_name.replace("\\", "/")).name
    match = _IMAGE_NAME_RE.match(base)
    if match:
        return f"{match['id']}{match['collection'] or ''}.jpg"
    return f"{_stem(base)}.jpg"


def parse_views(text: str) -> tuple[str, ...]:
    """`--views front,back,top` → ("front", "back", "top"); only the six known views, each once."""
    views = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    unknown = [v for v in views if v not in VIEWS]
    if not views or unknown:
        raise InputError(f"--views {text}: choose from {', '.join(VIEWS)} (comma-separated)")
    if len(set(views)) != len(views):
        raise InputError(f"--views {text}: a view is listed twice")
    return views
