"""Data-Juicer 1.6.1's word tokenization, re-implemented so that our word counts equal its word counts.

What is mirrored (py-data-juicer 1.6.1, `data_juicer/ops/common/`):
- `special_characters.py`: SPECIAL_CHARACTERS = string.punctuation + string.digits + string.whitespace
  + OTHER_SPECIAL_CHARACTERS + every key of emoji 2.2.0's EMOJI_DATA (both vendored in `dataprocess/data/`).
- `helper_func.get_words_from_document(doc)` without a tokenizer = `split_on_whitespace(doc, new_line=True, tab=True)`:
  a split on the three characters " ", "\\n" and "\\t" only (not "\\r", NBSP, ideographic space, ...), empty
  pieces removed.
- `helper_func.words_refinement(words, lower_case, strip_chars)`: optionally lower-case each word first, then strip
  special characters from both ends of each word (one character at a time, so multi-code-point emoji keys never
  match), then drop words that became empty.

The code is ours (str.split / str.strip in C instead of a regex split and a Python loop, which is what makes the
filter fast); the behaviour is Data-Juicer's, pinned by tests/test_dataprocess_filter.py.
"""

from __future__ import annotations

import json
import string
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
EMOJI_KEYS_FILE = DATA_DIR / "emoji_2_2_0_keys.json"
OTHER_SPECIAL_FILE = DATA_DIR / "dj_other_special_characters.json"

MAIN_SPECIAL_CHARACTERS = string.punctuation + string.digits + string.whitespace


@lru_cache(maxsize=1)
def emoji_keys() -> tuple[str, ...]:
    """The keys of emoji 2.2.0's EMOJI_DATA (vendored; see dataprocess/data/README.md)."""
    return tuple(json.loads(EMOJI_KEYS_FILE.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def special_characters() -> frozenset[str]:
    """Data-Juicer's SPECIAL_CHARACTERS set (single characters and multi-code-point emoji keys alike)."""
    other = json.loads(OTHER_SPECIAL_FILE.read_text(encoding="utf-8"))
    return frozenset(MAIN_SPECIAL_CHARACTERS + other) | frozenset(emoji_keys())


@lru_cache(maxsize=1)
def single_special_characters() -> frozenset[str]:
    """The single-code-point members of SPECIAL_CHARACTERS: the only ones Data-Juicer's per-character strip
    (`word[i] in SPECIAL_CHARACTERS`) can ever match."""
    return frozenset(c for c in special_characters() if len(c) == 1)


@lru_cache(maxsize=1)
def strip_chars() -> str:
    """`single_special_characters()` as one string for `str.strip`."""
    return "".join(sorted(single_special_characters()))


def split_words(text: str) -> list[str]:
    """Data-Juicer's `get_words_from_document(text)` with no tokenizer: split on " ", "\\n", "\\t"."""
    if "\n" in text or "\t" in text:
        text = text.replace("\n", " ").replace("\t", " ")
    return [w for w in text.split(" ") if w]


def refine_words(words: list[str], lower_case: bool = False) -> list[str]:
    """Data-Juicer's `words_refinement(words, lower_case, strip_chars=SPECIAL_CHARACTERS)`.

    `str.strip` with the ~1,400 special characters costs about a microsecond, so it only runs on the words that
    start or end with one (a set lookup); the result is the same.
    """
    special = single_special_characters()
    chars = strip_chars()
    if lower_case:
        words = [w.lower() for w in words]
    out = []
    for w in words:
        if w[0] in special or w[-1] in special:
            w = w.strip(chars)
            if not w:
                continue
        out.append(w)
    return out


def count_words(text: str) -> int:
    """`num_words` of words_num_filter (tokenization=False)."""
    return len(refine_words(split_words(text)))
