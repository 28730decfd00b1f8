"""Data-Juicer 1.6.1's text filters: words_num, word_repetition, character_repetition, text_length.

Each class re-implements the operator of the same name in `data_juicer/ops/filter/<name>.py` (py-data-juicer
1.6.1) with the same parameters, defaults, stats keys and arithmetic, so stats and kept sets are identical.
Only `tokenization: false` is supported: with `tokenization: true` Data-Juicer downloads a sentencepiece model
at run time, which this offline toolkit never does (a clear error says so).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from typing import Any

from dataprocess.ops.base import FilterOp, Sample, check_bool, check_number, check_positive_int
from vlmkit.io import InputError, quote


def _no_tokenization(op: FilterOp, params: dict[str, Any]) -> None:
    check_bool(params["tokenization"], "tokenization", op.where)
    if params["tokenization"]:
        raise InputError(
            f"{op.where}: {op.name} with tokenization: true needs Data-Juicer's sentencepiece model for lang "
            f"'{params['lang']}', which it downloads at run time; this offline toolkit supports only "
            f"tokenization: false (whitespace words, Data-Juicer's default)")
    if not isinstance(params["lang"], str):
        raise InputError(f"{op.where}: 'lang' must be a string, got {quote(params['lang'])}")


class WordsNumFilter(FilterOp):
    """Keep samples whose word count is in [min_num, max_num] (`num_words`).

    DJ: words = split on " ", "\\n", "\\t"; strip special characters from both ends of each word (no lower-casing);
    drop empty words; num_words = len(words).
    """

    name = "words_num_filter"
    stat_keys = ("num_words",)
    defaults = {"lang": "en", "tokenization": False, "min_num": 10, "max_num": sys.maxsize}

    def setup(self, params):
        _no_tokenization(self, params)
        self.min_num = check_number(params["min_num"], "min_num", self.where)
        self.max_num = check_number(params["max_num"], "max_num", self.where)

    def compute(self, sample: Sample, stats, image_cache):
        if "num_words" not in stats:
            stats["num_words"] = len(sample.words())

    def keep(self, stats):
        return self.in_range(stats["num_words"], self.min_num, self.max_num)

    def reason(self, stats):
        return f"num_words={stats['num_words']} {self.range_text(self.min_num, self.max_num)}"


class WordRepetitionFilter(FilterOp):
    """Keep samples whose word n-gram repetition ratio is in [min_ratio, max_ratio] (`word_rep_ratio`).

    DJ: words lower-cased, then stripped of special characters, empty ones dropped; count every n-gram of
    `rep_len` consecutive words (joined by a space); ratio = (sum of the counts of n-grams seen more than once) /
    (number of n-grams); 0.0 when there are fewer than `rep_len` words.
    """

    name = "word_repetition_filter"
    stat_keys = ("word_rep_ratio",)
    defaults = {"lang": "en", "tokenization": False, "rep_len": 10, "min_ratio": 0.0, "max_ratio": 0.5}

    def setup(self, params):
        _no_tokenization(self, params)
        self.n = check_positive_int(params["rep_len"], "rep_len", self.where)
        self.min_ratio = check_number(params["min_ratio"], "min_ratio", self.where)
        self.max_ratio = check_number(params["max_ratio"], "max_ratio", self.where)

    def compute(self, sample: Sample, stats, image_cache):
        if "word_rep_ratio" in stats:
            return
        words = sample.lower_words()
        n = self.n
        if len(words) < n:
            stats["word_rep_ratio"] = 0.0
            return
        counts = Counter([" ".join(words[i:i + n]) for i in range(len(words) - n + 1)] if n > 1 else words)
        total = len(words) - n + 1
        stats["word_rep_ratio"] = sum(c for c in counts.values() if c > 1) / total

    def keep(self, stats):
        return self.in_range(stats["word_rep_ratio"], self.min_ratio, self.max_ratio)

    def reason(self, stats):
        return f"word_rep_ratio={stats['word_rep_ratio']:.6g} {self.range_text(self.min_ratio, self.max_ratio)}"


class CharacterRepetitionFilter(FilterOp):
    """Keep samples whose character n-gram repetition ratio is in [min_ratio, max_ratio] (`char_rep_ratio`).

    DJ: count every substring of `rep_len` characters of the raw text; sort the counts in decreasing order;
    k = min(int(sqrt(number of distinct n-grams)), number of distinct n-grams seen more than once);
    ratio = (sum of the k largest counts) / (number of n-grams); 0.0 when the text is shorter than `rep_len`.
    """

    name = "character_repetition_filter"
    stat_keys = ("char_rep_ratio",)
    defaults = {"rep_len": 10, "min_ratio": 0.0, "max_ratio": 0.5}

    def setup(self, params):
        self.n = check_positive_int(params["rep_len"], "rep_len", self.where)
        self.min_ratio = check_number(params["min_ratio"], "min_ratio", self.where)
        self.max_ratio = check_number(params["max_ratio"], "max_ratio", self.where)

    def compute(self, sample: Sample, stats, image_cache):
        if "char_rep_ratio" in stats:
            return
        text, n = sample.text, self.n
        total = len(text) - n + 1
        if total <= 0:
            stats["char_rep_ratio"] = 0.0
            return
        counts = Counter([text[i:i + n] for i in range(total)] if n > 1 else text)
        freqs = sorted(counts.values(), reverse=True)
        num_rep = len(freqs) - freqs.count(1)
        # DJ uses int(np.sqrt(len)); math.isqrt is the same for every count below 2**52.
        k = min(math.isqrt(len(freqs)), num_rep)
        stats["char_rep_ratio"] = sum(freqs[:k]) / total

    def keep(self, stats):
        return self.in_range(stats["char_rep_ratio"], self.min_ratio, self.max_ratio)

    def reason(self, stats):
        return f"char_rep_ratio={stats['char_rep_ratio']:.6g} {self.range_text(self.min_ratio, self.max_ratio)}"


class TextLengthFilter(FilterOp):
    """Keep samples whose text length in characters (code points, `len(text)`) is in [min_len, max_len]."""

    name = "text_length_filter"
    stat_keys = ("text_len",)
    defaults = {"min_len": 10, "max_len": sys.maxsize}

    def setup(self, params):
        self.min_len = check_number(params["min_len"], "min_len", self.where)
        self.max_len = check_number(params["max_len"], "max_len", self.where)

    def compute(self, sample: Sample, stats, image_cache):
        if "text_len" not in stats:
            stats["text_len"] = len(sample.text)

    def keep(self, stats):
        return self.in_range(stats["text_len"], self.min_len, self.max_len)

    def reason(self, stats):
        return f"text_len={stats['text_len']} {self.range_text(self.min_len, self.max_len)}"
