"""MMBench scoring as VLMEvalKit does it without an LLM judge (its "exact matching" policy), by hand for the same
reason as the TextVQA rules: VLMEvalKit is a large framework, the rules are a few lines.

Choice extraction (VLMEvalKit `can_infer`): first the option letter — the answer with the characters
`.()[],:;!*#{}` turned into spaces and split on whitespace must contain exactly one of the option letters as a word
("B", "(B)", "B. cat", "The answer is B." -> B; "A or B" -> none); failing that, a lone "Z" means "none of the
options". Then the option text — exactly one option whose lower-cased text occurs in the lower-cased answer, provided
the answer is at most twice as long as all option texts together. Anything else is unextractable: wrong, and counted.
As in VLMEvalKit's default (non-verbose) mode, the article "A" in a sentence counts as the letter A.

Circular evaluation: the TSV holds each question once at `index` and its option rotations at `index + k * 1e6`
(with the answer letter rotated along); a question (a group) is right only if the extracted choice of every rotation
equals that rotation's answer. A TSV without rotations gives groups of one: plain accuracy, recorded as
`circular: false`.
"""

from __future__ import annotations

import string

OPTION_LETTERS = string.ascii_uppercase
ROTATION_STRIDE = 1_000_000
SPLIT_CHARS = ".()[],:;!*#{}"
NONE_OF_THE_OPTIONS = "Z"


def _words(answer: str) -> list[str]:
    for ch in SPLIT_CHARS:
        answer = answer.replace(ch, " ")
    return answer.split()


def infer_option_letter(answer: str, options: dict[str, str]) -> str | None:
    """The single option letter the answer names, "Z" for a lone Z, else None."""
    words = _words(answer)
    named = [letter for letter in options if letter in words]
    if len(named) == 1:
        return named[0]
    if not named and NONE_OF_THE_OPTIONS in words:
        return NONE_OF_THE_OPTIONS
    return None


def infer_option_text(answer: str, options: dict[str, str]) -> str | None:
    """The single option whose text the answer contains (case-insensitive), else None."""
    low = answer.lower()
    if len(low) > 2 * sum(len(text) for text in options.values()):
        return None
    found = [letter for letter, text in options.items() if text.lower() in low]
    return found[0] if len(found) == 1 else None


def extract_choice(answer: str, options: dict[str, str]) -> str | None:
    """VLMEvalKit's `can_infer`: the letter rule, then the option-text rule; None when neither decides."""
    return infer_option_letter(answer, options) or infer_option_text(answer, options)


def group_index(index: int) -> int:
    """The original question a (possibly rotated) TSV row belongs to."""
    return index % ROTATION_STRIDE


def circular_hit(rows: list[tuple[str | None, str]]) -> int:
    """1 if every (extracted choice, answer) pair of a group agrees, else 0 (unextractable = wrong)."""
    return int(all(extracted is not None and extracted == truth for extracted, truth in rows))
