"""The judge prompts and how their answers are read. Every judge number's signature carries the hash of its prompt
template (`prompt_hash`), so a changed prompt never mixes with cached or published numbers of the old one.

- CLAIR (Chan et al., 2023): the judge reads candidate and reference and answers JSON {"score": 0-100, "reason"};
  the metric is score / 100. An answer without such an object (or a score outside 0-100) is unparseable: null.
- FLEUR (Lee et al., 2024): a VLM sees the object's views and the caption and rates it from 0.0 to 1.0; the answer is
  started for it as "0." and the score is the expectation over the probabilities of the ten digit tokens, for the
  first and (after the most likely first digit) the second decimal: Σ p1(d)·d/10 + Σ p2(d)·d/100.
- attribute extraction: the judge returns the schema's slots of one text as JSON.
- pairwise: the judge sees the reference and two captions (A, B) and answers A, B, tie or both_bad.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

CLAIR = """You are judging a caption of an ancient object against an expert's reference description.

Reference description:
{reference}

Candidate caption:
{candidate}

On a scale of 0 to 100, how likely is it that the candidate caption describes the same object as the reference, \
with the same facts? Answer with JSON only, in the form {{"score": <integer 0-100>, "reason": "<one sentence>"}}."""

FLEUR = """Look at these views of one object and rate how well the caption describes it, from 0.0 (not at all) \
to 1.0 (completely and correctly). Consider the shape, technique, decoration and every stated fact.

Caption: {candidate}

Answer with the score only."""
FLEUR_ANSWER_PREFIX = "Score: 0."

ATTRIBUTES = """Extract the following facts from the description of an object. Use the words of the description; \
write null for a fact it does not state.

{slots}

Description:
{text}

Answer with one JSON object with exactly these keys: {keys}."""

PAIRWISE = """Two captions describe the same ancient object. An expert's reference description is given.

Reference description:
{reference}

Caption A:
{first}

Caption B:
{second}

Which caption describes the object more accurately and completely? Answer with exactly one word: A, B, tie \
(equally good) or both_bad (both wrong)."""

TEMPLATES = {"clair": CLAIR, "fleur": FLEUR + "\n" + FLEUR_ANSWER_PREFIX, "attribute_f1": ATTRIBUTES,
             "pairwise": PAIRWISE}


def prompt_hash(name: str, extra: str = "") -> str:
    """8 hex digits of the template (and, for attributes, the schema's slots): the `prompt:` signature field."""
    return hashlib.sha256((TEMPLATES[name] + "\0" + extra).encode("utf-8")).hexdigest()[:8]


_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in an answer (models wrap it in prose or ```json fences), or None."""
    for match in _OBJECT.finditer(text):
        try:
            value = json.loads(match.group(0))
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    # a nested object: try from the first brace to the last
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            value = json.loads(text[start:end + 1])
        except (json.JSONDecodeError, RecursionError):
            return None
        return value if isinstance(value, dict) else None
    return None


def parse_clair(answer: str) -> tuple[float | None, str | None, str | None]:
    """(score in 0..1, reason, problem): a score is an int/float (or numeric string) within 0-100."""
    data = first_json_object(answer)
    if data is None:
        return None, None, "no JSON object in the answer"
    score = data.get("score")
    if isinstance(score, str):
        try:
            score = float(score.strip().rstrip("%"))
        except ValueError:
            return None, None, f"score is not a number: {score[:40]!r}"
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return None, None, "no numeric 'score' key"
    if not 0 <= score <= 100:
        return None, None, f"score {score} outside 0-100"
    reason = data.get("reason")
    return float(score) / 100.0, reason if isinstance(reason, str) else None, None


PAIRWISE_WORDS = {"a": "first", "b": "second", "tie": "tie", "both_bad": "both_bad", "both bad": "both_bad",
                  "neither": "both_bad", "equal": "tie"}


def parse_pairwise(answer: str) -> str | None:
    """'first', 'second', 'tie', 'both_bad' or None (unparseable)."""
    text = answer.strip().lower().strip("*\"'`.:")
    text = re.sub(r"^(answer|caption)\s*[:\-]?\s*", "", text)
    for word in sorted(PAIRWISE_WORDS, key=len, reverse=True):
        if text == word or re.match(rf"{re.escape(word)}\b", text):
            return PAIRWISE_WORDS[word]
    return None


def parse_attributes(answer: str, keys: tuple[str, ...]) -> tuple[dict[str, Any] | None, str | None]:
    data = first_json_object(answer)
    if data is None:
        return None, "no JSON object in the answer"
    if not any(k in data for k in keys):
        return None, f"none of the schema's keys ({', '.join(keys)}) in the answer"
    return {k: data.get(k) for k in keys}, None
