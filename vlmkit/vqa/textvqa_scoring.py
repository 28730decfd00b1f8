"""TextVQA / VQA accuracy exactly as lmms-eval scores it (its `EvalAIAnswerProcessor` + `textvqa_process_results`).

Why by hand: lmms-eval pulls ~150 packages and the official VQA evaluation script is not packaged; the rules are
short. They are reproduced rule for rule (tests/test_vqa_scoring.py pins them), including three quirks that change
scores and that every published TextVQA number computed with lmms-eval, LLaVA or MMF carries:

- commas and question marks are deleted before punctuation handling, so the digit-comma rule never fires
  ("1,000" -> "1000");
- the period rule `(?!<=\\d)(\\.)(?!\\d)` was meant as a look-behind but is a look-ahead: it removes every period
  that is not followed by a digit ("3.5" stays, "u.s.a." -> "usa"), at most 32 of them (`re.UNICODE` was passed as
  the `count` argument of `re.sub`);
- a punctuation mark is deleted (not replaced by a space) when it touches a space anywhere in the text.

Accuracy of one prediction against n human answers: the mean over the n leave-one-out subsets of
min(#matches in the subset / 3, 1): 3 of 10 humans -> 0.9, 2 -> 0.6, 1 -> 0.3, 4 or more -> 1.0. With a single
reference answer every leave-one-out subset is empty (lmms-eval would score 0 for any prediction), so that case is
scored as normalised exact match instead, and results say so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
    "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
               "!")
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: a look-ahead, see the module docstring
COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
MAX_PERIODS_STRIPPED = 32  # re.sub(..., re.UNICODE): the flag's value 32 lands in `count`


def _tokenize(text: str) -> str:
    return text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()


def _punctuation(text: str) -> str:
    out = text
    digit_comma = COMMA_STRIP.search(text) is not None
    for mark in PUNCTUATION:
        if mark + " " in text or " " + mark in text or digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return PERIOD_STRIP.sub("", out, count=MAX_PERIODS_STRIPPED)


def _digits_articles_contractions(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(answer: str) -> str:
    """lmms-eval's EvalAIAnswerProcessor: `"The Two Dogs."` -> `"2 dogs"`."""
    text = _tokenize(answer).replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles_contractions(_punctuation(text))


def vqa_accuracy_normalized(prediction: str, references: Sequence[str]) -> float:
    """Accuracy of an already normalised prediction against normalised human answers (see the module docstring)."""
    if not references:
        raise ValueError("no reference answers")
    if len(references) == 1:
        return float(prediction == references[0])
    matches = sum(ref == prediction for ref in references)
    # Leaving out a matching answer leaves matches-1 matches, leaving out any other leaves all of them.
    total = matches * min(1.0, (matches - 1) / 3) + (len(references) - matches) * min(1.0, matches / 3)
    return total / len(references)


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    return vqa_accuracy_normalized(normalize_answer(prediction), [normalize_answer(r) for r in references])
