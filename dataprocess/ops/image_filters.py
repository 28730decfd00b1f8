"""Data-Juicer 1.6.1's image_shape_filter, reading image sizes from file headers.

Mirrors `data_juicer/ops/filter/image_shape_filter.py`: stats `image_width` / `image_height` are lists with one
entry per image of the sample, in order (empty lists for a sample without images, which is kept); an image
passes when min_width <= w <= max_width and min_height <= h <= max_height (closedness per the range
parameters); `any_or_all: any` keeps a sample when at least one image passes, `all` when every image does.

Unlike Data-Juicer, a missing or unreadable image drops only its own sample (reported as such), not the whole
batch, and sizes come from the header instead of a full decode (see `vlmkit.images`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from dataprocess.ops.base import FilterOp, ImageProblem, Sample, check_number
from vlmkit.images import read_image_header
from vlmkit.io import InputError, quote
from vlmkit.streams import EmbeddedImage


def read_image(image: str | EmbeddedImage):
    """The header of an image given as a path or as bytes embedded in the data set."""
    if isinstance(image, EmbeddedImage):
        return read_image_header(image.label, image.data)
    return read_image_header(image)


def image_headers(sample: Sample, image_cache: dict) -> list:
    """The header of each of the sample's images (cached per chunk); the first bad one is raised."""
    out = []
    for path in sample.images:
        info = image_cache.get(path)
        if info is None:
            info = image_cache[path] = read_image(path)
        if isinstance(info, ImageProblem):
            raise info
        out.append(info)
    return out


class ImageShapeFilter(FilterOp):
    name = "image_shape_filter"
    stat_keys = ("image_width", "image_height")
    defaults = {"min_width": 1, "max_width": sys.maxsize, "min_height": 1, "max_height": sys.maxsize,
                "any_or_all": "any"}
    uses_images = True

    def setup(self, params):
        for key in ("min_width", "max_width", "min_height", "max_height"):
            setattr(self, key, check_number(params[key], key, self.where))
        if params["any_or_all"] not in ("any", "all"):
            raise InputError(f"{self.where}: any_or_all must be 'any' or 'all', got {quote(params['any_or_all'])}")
        self.any = params["any_or_all"] == "any"

    def compute(self, sample: Sample, stats, image_cache):
        if "image_width" in stats and "image_height" in stats:
            return
        infos = image_headers(sample, image_cache)
        stats["image_width"] = [info.width for info in infos]
        stats["image_height"] = [info.height for info in infos]

    def _image_ok(self, w: int, h: int) -> bool:
        return self.in_range(w, self.min_width, self.max_width) and self.in_range(h, self.min_height, self.max_height)

    def keep(self, stats):
        ws, hs = stats["image_width"], stats["image_height"]
        if not ws:
            return True
        oks = [self._image_ok(w, h) for w, h in zip(ws, hs, strict=True)]
        return any(oks) if self.any else all(oks)

    def reason(self, stats):
        sizes = ", ".join(f"{w}x{h}" for w, h in zip(stats["image_width"], stats["image_height"], strict=True))
        which = "no image" if self.any else "not every image"
        return (f"{which} of [{sizes}] has width {self.kept_range(self.min_width, self.max_width)} "
                f"and height {self.kept_range(self.min_height, self.max_height)}")


class _PerImageFilter(FilterOp):
    """A filter with one stat value per image and Data-Juicer's `any_or_all` rule (no image: kept)."""

    stat: str
    uses_images = True

    def setup_any_or_all(self, params) -> None:
        if params["any_or_all"] not in ("any", "all"):
            raise InputError(f"{self.where}: any_or_all must be 'any' or 'all', got {quote(params['any_or_all'])}")
        self.any = params["any_or_all"] == "any"

    def bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    def keep(self, stats):
        oks = [self.in_range(v, *self.bounds()) for v in stats[self.stat]]
        if not oks:
            return True
        return any(oks) if self.any else all(oks)

    def reason(self, stats):
        which = "no image" if self.any else "not every image"
        values = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in stats[self.stat])
        return f"{which} of [{values}] has {self.stat} {self.kept_range(*self.bounds())}"


class ImageAspectRatioFilter(_PerImageFilter):
    """Data-Juicer 1.6.1's image_aspect_ratio_filter (`data_juicer/ops/filter/image_aspect_ratio_filter.py`):
    stat `aspect_ratios`, width / height of each image (as loaded: EXIF orientation applied, here from the header),
    kept when min_ratio <= ratio <= max_ratio for any (or all) images."""

    name = "image_aspect_ratio_filter"
    stat = "aspect_ratios"
    stat_keys = ("aspect_ratios",)
    defaults = {"min_ratio": 0.333, "max_ratio": 3.0, "any_or_all": "any"}

    def setup(self, params):
        self.min_ratio = check_number(params["min_ratio"], "min_ratio", self.where)
        self.max_ratio = check_number(params["max_ratio"], "max_ratio", self.where)
        self.setup_any_or_all(params)

    def bounds(self):
        return self.min_ratio, self.max_ratio

    def compute(self, sample: Sample, stats, image_cache):
        if "aspect_ratios" in stats:
            return
        stats["aspect_ratios"] = [info.width / info.height for info in image_headers(sample, image_cache)]


# Data-Juicer's size_to_bytes units (data_juicer/utils/mm_utils.py): binary multiples, case-insensitive.
_UNITS = {"": 0, **{u: 10 * (k + 1) for k, unit in enumerate("kmgtpezy") for u in (f"{unit}b", f"{unit}ib")}}


def size_to_bytes(size: Any, name: str, where: str) -> int:
    """Data-Juicer 1.6.1's `size_to_bytes`, quirks included: the digits of the string are joined (so "1.5MB" is
    15 MiB, as there) and the letters are the unit; a number without a unit is bytes."""
    if isinstance(size, bool) or not isinstance(size, (str, int)):
        raise InputError(f"{where}: '{name}' must be a size such as '10KB' or '2MiB', got {quote(size)}")
    text = str(size)
    digits = "".join(c for c in text if c.isdigit())
    unit = "".join(c for c in text if c.isalpha()).lower()
    if not digits:
        raise InputError(f"{where}: '{name}' {quote(size)} contains no number")
    if unit not in _UNITS:
        raise InputError(f"{where}: '{name}' {quote(size)}: unknown unit '{unit}' (KB, MB, GB, TB, ... or KiB, MiB, "
                         f"..., counted in bytes)")
    return int(float(digits)) << _UNITS[unit]


class ImageSizeFilter(_PerImageFilter):
    """Data-Juicer 1.6.1's image_size_filter (`data_juicer/ops/filter/image_size_filter.py`): stat `image_sizes`,
    the bytes of each image file (`os.path.getsize`; for embedded images, the length of their bytes), kept when
    min_size <= size <= max_size for any (or all) images. Files are not opened: a missing one is a missing image."""

    name = "image_size_filter"
    stat = "image_sizes"
    stat_keys = ("image_sizes",)
    defaults = {"min_size": "0", "max_size": "1TB", "any_or_all": "any"}

    def setup(self, params):
        self.min_size = size_to_bytes(params["min_size"], "min_size", self.where)
        self.max_size = size_to_bytes(params["max_size"], "max_size", self.where)
        self.setup_any_or_all(params)

    def bounds(self):
        return self.min_size, self.max_size

    def compute(self, sample: Sample, stats, image_cache):
        if "image_sizes" in stats:
            return
        sizes = []
        for path in sample.images:
            if isinstance(path, EmbeddedImage):
                sizes.append(len(path.data))
                continue
            try:
                sizes.append(os.path.getsize(path))
            except FileNotFoundError:
                raise ImageProblem(path, "missing", "file not found") from None
            except OSError as exc:
                raise ImageProblem(path, "unreadable", f"{type(exc).__name__}: {exc}") from None
        stats["image_sizes"] = sizes
