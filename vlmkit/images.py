"""The one image-opening policy every loader uses (captioning, training, evaluation, data processing, retrieval).

A file an item refers to is a *bad image of that item* -- never a crash -- when it is missing, empty, not a file,
not an image, truncated, or larger than the pixel limit (a decompression bomb: a 45-byte PNG header can claim
20000x20000 pixels). Each loader decides what a bad image costs (a skipped view, a dropped sample, a per-item
failure) and lists it with `ImageProblem.reason`.

The pixel limit defaults to PIL's own (`PIL.Image.MAX_IMAGE_PIXELS`, about 89.5 megapixels); entry scripts expose
it as `--max_image_pixels` (`max_image_pixels_option()` + `set_max_image_pixels`; 0 = no limit). PIL keeps the limit
in a module global, so this module does too: one process, one policy.

`read_image_header` reads size and format from the header alone (no decode), with Data-Juicer 1.6.1's semantics:
that loads images through HF `datasets.Image.decode_example`, which applies the EXIF orientation
(`ImageOps.exif_transpose`), so for orientations 5-8 width and height are swapped. One documented difference: a PNG
whose eXIf chunk comes after the image data (the spec puts it before) is not seen, because finding it would need a
full read. tests/test_dataprocess_filter.py checks that no decode happens.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image

DEFAULT_MAX_IMAGE_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485
ORIENTATION_TAG = 0x0112
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # transpose, rotate 270, transverse, rotate 90

_max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS


class ImageProblem(Exception):
    """Why an image cannot be used; `kind` is one of missing, empty, not a file, unreadable, truncated, too large."""

    def __init__(self, path: str | os.PathLike, kind: str, detail: str):
        self.path = str(path)
        self.kind = kind
        self.detail = detail
        super().__init__(f"{self.path}: {self.reason}")

    @property
    def reason(self) -> str:
        """The problem without the path, e.g. `too large image (20000x20000 = 400000000 pixels > limit ...)`."""
        return f"{self.kind} image ({self.detail})"


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str | None
    mode: str


def set_max_image_pixels(limit: int | None) -> None:
    """Set the process-wide pixel limit (None or 0 = no limit); PIL's own bomb check follows it."""
    global _max_pixels
    if limit is not None and limit < 0:
        raise ValueError(f"pixel limit must be >= 0, got {limit}")
    _max_pixels = limit or None
    # PIL warns above its limit and raises above twice it; we raise above ours, so PIL must never raise first.
    Image.MAX_IMAGE_PIXELS = _max_pixels


def max_image_pixels() -> int | None:
    return _max_pixels


MAX_IMAGE_PIXELS_HELP = ("images with more pixels are bad images of their item (decompression-bomb guard; PIL's "
                         "default limit; 0 = no limit)")


def max_image_pixels_option() -> Any:
    """The `max_image_pixels` field of a command's options (apply it with `set_max_image_pixels`)."""
    from vlmkit.options import opt
    from vlmkit.ranges import Range

    return opt(DEFAULT_MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS_HELP, range=Range(0, note="0 = no limit"), metavar="N")


def _check_size(path: str | os.PathLike, img: Image.Image) -> None:
    width, height = img.size
    if _max_pixels is not None and width * height > _max_pixels:
        raise ImageProblem(path, "too large", f"{width}x{height} = {width * height} pixels > limit {_max_pixels}; "
                                              "raise --max_image_pixels if the file is trusted")


def _classify(path: str | os.PathLike, exc: BaseException) -> ImageProblem:
    if isinstance(exc, ImageProblem):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ImageProblem(path, "missing", "file not found")
    if isinstance(exc, IsADirectoryError):
        return ImageProblem(path, "not a file", "is a directory")
    if isinstance(exc, Image.DecompressionBombError):
        # PIL's own check (at twice its limit, inside Image.open) fired before ours could: same message as ours.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{found[1]} pixels" if found else str(exc)
        return ImageProblem(path, "too large", f"{pixels} > limit {_max_pixels}; raise --max_image_pixels if the "
                                              "file is trusted")
    try:
        if Path(path).is_file() and os.path.getsize(path) == 0:
            return ImageProblem(path, "empty", "0 bytes")
    except OSError:
        pass
    if isinstance(exc, OSError) and "truncated" in str(exc).lower():
        return ImageProblem(path, "truncated", str(exc))
    return ImageProblem(path, "unreadable", f"{type(exc).__name__}: {exc}")


def _open(source: str | os.PathLike | IO[bytes], label: str | os.PathLike | None = None) -> Image.Image:
    label = source if label is None else label
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(source)
    try:
        _check_size(label, img)
    except ImageProblem:
        img.close()
        raise
    return img


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open, fully decode and convert an image to RGB; any problem is raised as `ImageProblem`."""
    try:
        with _open(path) as img:
            img.load()
            return img.convert("RGB")
    # PIL raises many types for broken files (UnidentifiedImageError, SyntaxError, ValueError, struct.error,
    # EOFError, ...): every one of them is a bad image of this item, never a crash of the run.
    except Exception as exc:  # noqa: BLE001
        raise _classify(path, exc) from None


def open_rgb_bytes(data: bytes, label: str) -> Image.Image:
    """`open_rgb` for an image held in memory (e.g. a base64 cell of a benchmark TSV); `label` names it in errors."""
    import io

    if not data:
        raise ImageProblem(label, "empty", "0 bytes")
    try:
        with _open(io.BytesIO(data), label) as img:
            img.load()
            return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - see open_rgb
        raise _classify(label, exc) from None


def image_problem(path: str | os.PathLike, fast: bool = True) -> ImageProblem | None:
    """Why `path` cannot be used as an image, or None. `fast` decodes JPEGs at 1/8 scale: quick, still complete."""
    try:
        with _open(path) as img:
            if fast:
                img.draft("RGB", (64, 64))
            img.load()
    except Exception as exc:  # noqa: BLE001 - see open_rgb
        return _classify(path, exc)
    return None


def read_image_header(path: str | os.PathLike, data: bytes | None = None) -> ImageInfo | ImageProblem:
    """Width/height (after EXIF orientation), format and mode from the header only, or the `ImageProblem`.

    With `data`, the image is those bytes (embedded in a data set) and `path` only names it. The problem is
    returned, not raised, so callers can cache it.
    """
    if data is not None and not data:
        return ImageProblem(path, "empty", "0 bytes")
    try:
        import io

        with _open(path if data is None else io.BytesIO(data), path) as img:
            width, height = img.size
            # Image.Image.getexif reads only header metadata (EXIF, PNG text chunks, XMP, TIFF tags);
            # PngImageFile overrides it to decode the whole image when no eXIf chunk preceded the pixels.
            # Pillow's TIFF plugin already reports the oriented size (and drops the tag on load).
            if img.format != "TIFF" and Image.Image.getexif(img).get(ORIENTATION_TAG) in SWAPPING_ORIENTATIONS:
                width, height = height, width
            return ImageInfo(width, height, img.format, img.mode)
    except Exception as exc:  # noqa: BLE001 - see open_rgb
        return _classify(path, exc)
