"""Data-Juicer 1.6.1's image_shape_filter, reading image sizes from file headers.

Mirrors `data_juicer/ops/filter/image_shape_filter.py`: stats `image_width` / `image_height` are lists with one
entry per image of the sample, in order (empty lists for a sample without images, which is kept); an image
passes when min_width <= w <= max_width and min_height <= h <= max_height (closedness per the range
parameters); `any_or_all: any` keeps a sample when at least one image passes, `all` when every image does.

Unlike Data-Juicer, a missing or unreadable image drops only its own sample (reported as such), not the whole
batch, and sizes come from the header instead of a full decode (see `vlmkit.images`).
"""

from __future__ import annotations

import sys

from dataprocess.ops.base import FilterOp, ImageProblem, Sample, check_number
from vlmkit.images import read_image_header
from vlmkit.io import InputError, quote
from vlmkit.streams import EmbeddedImage


def read_image(image: str | EmbeddedImage):
    """The header of an image given as a path or as bytes embedded in the data set."""
    if isinstance(image, EmbeddedImage):
        return read_image_header(image.label, image.data)
    return read_image_header(image)


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
        widths, heights = [], []
        for path in sample.images:
            info = image_cache.get(path)
            if info is None:
                info = image_cache[path] = read_image(path)
            if isinstance(info, ImageProblem):
                raise info
            widths.append(info.width)
            heights.append(info.height)
        stats["image_width"] = widths
        stats["image_height"] = heights

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
