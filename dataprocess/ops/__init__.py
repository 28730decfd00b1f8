"""The Data-Juicer filter operators this toolkit implements, by their Data-Juicer names."""

from __future__ import annotations

from dataprocess.ops.base import FilterOp, ImageProblem, Sample
from dataprocess.ops.clip_filter import ImageTextSimilarityFilter
from dataprocess.ops.dedup import ImageDeduplicator
from dataprocess.ops.image_filters import ImageAspectRatioFilter, ImageShapeFilter, ImageSizeFilter
from dataprocess.ops.text_filters import (
    CharacterRepetitionFilter,
    TextLengthFilter,
    WordRepetitionFilter,
    WordsNumFilter,
)

OPERATORS: dict[str, type[FilterOp]] = {
    cls.name: cls
    for cls in (WordsNumFilter, WordRepetitionFilter, CharacterRepetitionFilter, TextLengthFilter, ImageShapeFilter,
                ImageAspectRatioFilter, ImageSizeFilter, ImageTextSimilarityFilter, ImageDeduplicator)
}

__all__ = ["OPERATORS", "FilterOp", "ImageProblem", "Sample"]
