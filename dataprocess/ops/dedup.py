"""Data-Juicer 1.6.1's image_deduplicator: drop every later sample whose images have the same perceptual hash.

Mirrors `data_juicer/ops/deduplicator/image_deduplicator.py`: the sample's hash is the concatenation of its images'
hashes from `imagededup`'s PHash / DHash / WHash / AHash (`encode_image(image_array=...)` on the RGB image as
loaded: EXIF orientation applied for files, as HF datasets' Image decoding does; embedded bytes are opened as they
are), computed with the same library Data-Juicer uses, so the hashes are identical (imagehash's phash is a different
function: it includes the DC term in the median). A sample without images has the empty hash and is always kept;
of the samples sharing a non-empty hash, the first in data set order is kept. `consider_text` pairs the image hash
with Data-Juicer's document hash (md5 of the stripped text, `lowercase` / `ignore_non_character` as in its
DocumentDeduplicator); that pair is never empty, so then image-less samples are de-duplicated by text, as in
Data-Juicer. Hash equality is exact: Data-Juicer 1.6.1 has no Hamming-distance threshold here.

Across chunks and workers this needs a group-by on the hash (`dataprocess.filter` does it after the filters ran:
locally a streaming pass over the chunks' hash files, under Ray a Ray Data `groupby`). It must be the recipe's last
operator.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Any, ClassVar

from dataprocess.ops.base import FilterOp, ImageProblem, Sample, check_bool
from vlmkit.io import InputError, quote
from vlmkit.streams import EmbeddedImage

HASH_METHODS = ("phash", "dhash", "whash", "ahash")
_NON_CHARACTER = re.compile(f"\\s+|\\d+|[{re.escape(string.punctuation)}]")


def _hasher(method: str):
    from imagededup.methods import AHash, DHash, PHash, WHash

    return {"phash": PHash, "dhash": DHash, "whash": WHash, "ahash": AHash}[method](verbose=False)


def _load_rgb(image: str | EmbeddedImage):
    """The RGB image as Data-Juicer's load_image gives it: files through HF datasets' Image decoding (EXIF
    orientation applied), embedded bytes opened as they are."""
    from PIL import Image

    from vlmkit.images import open_rgb, open_rgb_bytes

    if isinstance(image, EmbeddedImage):
        return open_rgb_bytes(image.data, image.label)
    try:
        with Image.open(image) as raw:
            orientation = raw.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - open_rgb below reports the problem
        orientation = None
    img = open_rgb(image)
    # what PIL.ImageOps.exif_transpose does for each orientation (open_rgb's copy carries no EXIF any more)
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return img.transpose(method) if method is not None else img


class ImageDeduplicator(FilterOp):
    name = "image_deduplicator"
    stat_keys = ()
    defaults = {"method": "phash", "consider_text": False, "lowercase": False, "ignore_non_character": False}
    uses_images = True
    is_deduplicator: ClassVar[bool] = True

    def setup(self, params):
        if params["method"] not in HASH_METHODS:
            raise InputError(f"{self.where}: method must be one of {', '.join(HASH_METHODS)}, got "
                             f"{quote(params['method'])}")
        self.method = params["method"]
        for key in ("consider_text", "lowercase", "ignore_non_character"):
            setattr(self, key, check_bool(params[key], key, self.where))
        self._hash = None

    def sample_hash(self, sample: Sample) -> str:
        """The sample's hash ("" without images); raises `ImageProblem` for an image that cannot be read."""
        if self._hash is None:
            self._hash = _hasher(self.method)
        import numpy as np

        value = "".join(self._hash.encode_image(image_array=np.array(_load_rgb(p))) for p in sample.images)
        # With consider_text Data-Juicer's key is the pair (image hash, text hash), which is never empty: samples
        # without images are de-duplicated by their text too (recorded from Data-Juicer 1.6.1: tests/test_dj_parity.py).
        if self.consider_text:
            text = sample.text.lower() if self.lowercase else sample.text
            if self.ignore_non_character:
                text = _NON_CHARACTER.sub("", text)
            value += ":" + hashlib.md5(text.strip().encode("utf-8")).hexdigest()
        return value

    # The filter protocol: a deduplicator keeps every sample on its own; the group-by decides.
    def compute(self, sample: Sample, stats: dict[str, Any], image_cache: dict) -> None:
        try:
            stats.setdefault("__hash__", self.sample_hash(sample))
        except ImageProblem:
            raise
        except Exception as exc:  # noqa: BLE001 - a decode error inside the hasher is this image's problem
            raise ImageProblem(str(sample.images[0]) if sample.images else "", "unreadable",
                               f"{type(exc).__name__}: {exc}") from None

    def keep(self, stats):
        return True

    def reason(self, stats):
        return "duplicate image hash"
