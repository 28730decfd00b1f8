"""Image facts read cheaply: size and format from the file header, identity from a content hash.

`PIL.Image.open` parses only the header (the pixels are decoded on `.load()`, which we never call), so reading a
size costs one small read instead of a full decode. tests/test_dataprocess_filter.py checks that no decode
happens.

Size semantics follow Data-Juicer 1.6.1, which loads images through HF `datasets.Image.decode_example`: that
applies the EXIF orientation (`ImageOps.exif_transpose`), so for orientations 5-8 (rotated by 90 degrees) width
and height are swapped. We read the orientation from the same header metadata without decoding. One documented
difference: a PNG whose eXIf chunk comes after the image data (the PNG spec puts it before) is not seen, because
finding it would need a full read. Data-Juicer also sets `ImageFile.LOAD_TRUNCATED_IMAGES = True`, so it accepts
images whose data is cut short; a header read accepts them too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

ORIENTATION_TAG = 0x0112
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # transpose, rotate 270, transverse, rotate 90


class ImageProblem(Exception):
    """An image a sample refers to is missing or unreadable: that sample is dropped and reported."""

    def __init__(self, path: str, kind: str, detail: str):
        super().__init__(f"{path}: {kind} image ({detail})")
        self.path = path
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str | None
    mode: str


def read_image_header(path: str) -> ImageInfo | ImageProblem:
    """Width/height (after EXIF orientation), format and mode of an image, from its header only.

    Returns an `ImageProblem` (not raised, so callers can cache it) for a missing or unreadable file.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            # Image.Image.getexif reads only header metadata (EXIF, PNG text chunks, XMP, TIFF tags);
            # PngImageFile overrides it to decode the whole image when no eXIf chunk preceded the pixels.
            # Pillow's TIFF plugin already reports the oriented size (and drops the tag on load).
            if img.format != "TIFF" and Image.Image.getexif(img).get(ORIENTATION_TAG) in SWAPPING_ORIENTATIONS:
                width, height = height, width
            return ImageInfo(width, height, img.format, img.mode)
    except FileNotFoundError:
        return ImageProblem(path, "missing", "file not found")
    except IsADirectoryError:
        return ImageProblem(path, "unreadable", "is a directory")
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (UnidentifiedImageError, SyntaxError, ...)
        return ImageProblem(path, "unreadable", f"{type(exc).__name__}: {exc}")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Exact content hash of a file (identical bytes <=> identical hash); raises OSError when unreadable."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
