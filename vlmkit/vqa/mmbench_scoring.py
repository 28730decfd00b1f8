"""MMBench scoring as VLMEvalKit does it without an LLM judge (its "exact matching" policy), by hand for the same
reason as the TextVQA rules: VLMEvalKit is a large framework, the rules are a few lines.

Choice extraction follows VLMEvalKit's `can_infer` (vlmeval/utils/matching_util.py, as of its 2026-06-25 revision),
in this order; the rules are restated here, the code is our own:

1. Refusal: an answer containing one of VLMEvalKit's refusal phrases (`REFUSALS`, case-sensitive) is "Z" (none of the
   options), whatever else it says.
2. Option letter: the answer with the characters `.()[],:;!*#{}` turned into spaces and split on whitespace. If
   exactly one option letter occurs as a word, it is the choice only when it stands near the end: its first
   occurrence is among the last four words ("B", "(B)", "B. cat", "The answer is B." -> B; "B is right, because the
   animal on the left is a cat" -> no letter). No option letter but a lone word "Z" -> "Z". Two letters ("A or B")
   decide nothing.
3. Stated answer: failing that, "answer is X" / "correct answer is **X**" (any case, X one of A-D and an option) -> X,
   for chain-of-thought answers that name their pick early and then explain.
4. Option text: failing that, exactly one option whose lower-cased text occurs in the lower-cased answer, provided the
   answer is at most twice as long as all option texts together.

Anything else is unextractable: wrong, and counted. As in VLMEvalKit's default (non-verbose) mode, the article "A"
counts as the letter A (near the end: "It is A" -> A). Not taken over: VLMEvalKit's check for its own API wrapper's
failure message (our answers come from local models) and its LLM judge.

Circular evaluation: the TSV holds each question once at `index` and its option rotations at `index + k * 1e6`
(with the answer letter rotated along); a question (a group) is right only if the extracted choice of every rotation
equals that rotation's answer. A TSV without rotations gives groups of one: plain accuracy, recorded as
`circular: false`.
"""

from __future__ import annotations

import re
import string

OPTION_LETTERS = string.ascii_uppercase
ROTATION_STRIDE = 1_000_000
SPLIT_CHARS = ".()[],:;!*#{}"
NONE_OF_THE_OPTIONS = "Z"
NEAR_THE_END = 4  # a lone option letter counts when its first occurrence is among the answer's last 4 words
REFUSALS = (  # VLMEvalKit's phrases for "the model refused": scored as Z, none of the options
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_STATED = re.compile(r"(?:correct\s+)?answer\s+is\s+\**([abcd])\**", re.IGNORECASE)


def _words(answer: str) -> list[str]:
    for ch in SPLIT_CHARS:
        answer = answer.replace(ch, " ")
    return answer.split()


def infer_option_letter(answer: str, options: dict[str, str]) -> str | None:
    """Rules 1-3 of the module docstring: "Z" for a refusal, the single option letter near the end, "Z" for a lone
    Z, the letter of "answer is X"; else None."""
    if any(phrase in answer for phrase in REFUSALS):
        return NONE_OF_THE_OPTIONS
    words = _words(answer)
    named = [letter for letter in options if letter in words]
    if len(named) == 1:
        if words.index(named[0]) >= len(words) - NEAR_THE_END:
            return named[0]
    elif not named and NONE_OF_THE_OPTIONS in words:
        return NONE_OF_THE_OPTIONS
    stated = _STATED.search(answer)
    if stated and stated.group(1).upper() in options:
        return stated.group(1).upper()
    return None


def infer_option_text(answer: str, options: dict[str, str]) -> str | None:
    """The single option whose text the answer contains (case-insensitive), else None."""
    low = answer.lower()
    if len(low) > 2 * sum(len(text) for text in options.values()):
        return None
    found = [letter for letter, text in options.items() if text.lower() in low]
    return found[0] if len(found) == 1 else None


def extract_choice(answer: str, options: dict[str, str]) -> str | None:
    """VLMEvalKit's `can_infer`: the letter rules, then the option-text rule; None when neither decides."""
    return infer_option_letter(answer, options) or infer_option_text(answer, options)


def group_index(index: int) -> int:
    """The original question a (possibly rotated) TSV row belongs to."""
    return index % ROTATION_STRIDE


def circular_hit(rows: list[tuple[str | None, str]]) -> int:
    """1 if every (extracted choice, answer) pair of a group agrees, else 0 (unextractable = wrong)."""
    return int(all(extracted is not None and extracted == truth for extracted, truth in rows))
