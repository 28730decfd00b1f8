"""The captioning field's standard n-gram metrics, computed by pycocoevalcap (the COCO caption evaluation code).

BLEU-1..4, METEOR, ROUGE-L and CIDEr, after the same PTB tokenisation as the COCO server (a Java tool, like
METEOR). SPICE is listed as unavailable: pycocoevalcap downloads Stanford CoreNLP models on its first run, and
this toolkit never downloads anything at run time. Without Java on PATH all of them are unavailable, with
that reason; none is ever reported as 0.0 in its place.

Java start-up and METEOR's paraphrase tables take several seconds, so the scorer is created (and warmed up) once
per call and its work runs in a background thread: the Java processes use the other core while torch encodes.
CIDEr's IDF weights come from the references of the evaluated set, so CIDEr depends on the set, as in COCO.

For the confidence intervals (`bootstrap.py`): CIDEr and ROUGE-L are means of their per-item scores; corpus BLEU
is not, so each item's BLEU counts (test and reference length, n-gram guesses and matches, as pycocoevalcap's
BleuScorer cooks them) are kept and the corpus formula is re-evaluated per resample. Corpus METEOR is computed by
the Java scorer from pooled statistics that pycocoevalcap does not expose, so it has no CI.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

COCO_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
SPICE_REASON = ("SPICE is not computed: pycocoevalcap's SPICE downloads Stanford CoreNLP models on first use and "
                "this toolkit never downloads at run time")
_SPACE = re.compile(r"\s+")


@dataclass
class CocoScores:
    corpus: dict[str, float] = field(default_factory=dict)
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    bleu_counts: np.ndarray | None = None  # (n, 10): testlen, reflen, guess_1..4, correct_1..4 per item
    reason: str | None = None  # set when the metrics could not be computed


def java_unavailable_reason() -> str | None:
    if shutil.which("java") is None:
        return ("Java not found on PATH: pycocoevalcap's PTB tokenizer and METEOR are Java programs "
                "(install a JRE, e.g. openjdk-17-jre-headless)")
    try:
        subprocess.run(["java", "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Java on PATH does not run ({exc.__class__.__name__}: {exc})"
    return None


class CocoScorer:
    """pycocoevalcap scorers created once; `submit` scores a model's captions in the background thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coco")
        self._meteor = None
        self._ready: Future = self._pool.submit(self._start)

    def _start(self) -> None:
        from pycocoevalcap.meteor.meteor import Meteor

        self._meteor = Meteor()
        self._meteor.compute_score({0: ["a red vase"]}, {0: ["a red vase"]})  # loads the paraphrase tables

    def wait_ready(self) -> str | None:
        """Block until Java and METEOR are up; returns a reason if they could not start."""
        try:
            self._ready.result()
        except Exception as exc:  # Java crashed, jar unreadable, ...
            return f"METEOR could not start ({exc.__class__.__name__}: {exc})"
        return None

    def submit(self, generated: Sequence[str], references: Sequence[str]) -> Future:
        return self._pool.submit(self._score_safely, list(generated), list(references))

    def _score_safely(self, generated: list[str], references: list[str]) -> CocoScores:
        start_error = self.wait_ready()
        if start_error:
            return CocoScores(reason=start_error)
        try:
            return self._score(generated, references)
        except Exception as exc:  # a metric failing is reported as unavailable, never as 0.0
            log.exception("pycocoevalcap failed")
            return CocoScores(reason=f"pycocoevalcap failed ({exc.__class__.__name__}: {exc})")

    def _score(self, generated: list[str], references: list[str]) -> CocoScores:
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        # The tokenizer works line by line: any line break inside a caption would shift every later caption.
        def clean(text: str) -> str:
            return _SPACE.sub(" ", text).strip()

        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({i: [{"caption": clean(r)}] for i, r in enumerate(references)})
        res = tokenizer.tokenize({i: [{"caption": clean(g)}] for i, g in enumerate(generated)})
        if len(gts) != len(references) or len(res) != len(generated):
            raise RuntimeError("PTB tokenizer returned a different number of captions")
        out = CocoScores()
        bleu, bleu_per, out.bleu_counts = _bleu(gts, res)
        for n in range(4):
            out.corpus[f"bleu_{n + 1}"] = float(bleu[n])
            out.per_sample[f"bleu_{n + 1}"] = np.asarray(bleu_per[n], dtype=np.float64)
        for name, scorer in (("meteor", self._meteor), ("rouge_l", Rouge()), ("cider", Cider())):
            corpus, per = scorer.compute_score(gts, res)
            out.corpus[name] = float(corpus)
            out.per_sample[name] = np.asarray(per, dtype=np.float64)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # after an input error: stop queued work
        if self._meteor is not None:
            try:
                self._meteor.meteor_p.stdin.close()
                self._meteor.meteor_p.kill()
                self._meteor.meteor_p.wait()
            except (OSError, AttributeError):
                pass
            self._meteor = None


def _bleu(gts: dict, res: dict) -> tuple[list[float], list[list[float]], np.ndarray]:
    """pycocoevalcap's Bleu(4).compute_score (same scorer, same "closest" option), plus each item's counts."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    scorer = BleuScorer(n=4)
    for key in gts:
        scorer += (res[key][0], gts[key])
    score, per_item = scorer.compute_score(option="closest", verbose=0)
    counts = np.array([[c["testlen"], scorer._single_reflen(c["reflen"], "closest", c["testlen"]), *c["guess"],
                        *c["correct"]] for c in scorer.ctest], dtype=np.float64).reshape(len(scorer.ctest), 10)
    return score, per_item, counts
