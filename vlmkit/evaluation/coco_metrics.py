"""The captioning field's standard n-gram metrics, computed by pycocoevalcap (the COCO caption evaluation code).

BLEU-1..4, METEOR, ROUGE-L and CIDEr, after the same PTB tokenisation as the COCO server (a Java tool, like
METEOR). SPICE is listed as unavailable: pycocoevalcap downloads Stanford CoreNLP models on its first run, and
this toolkit never downloads anything at run time. Without Java on PATH all of them are unavailable, with
that reason; none is ever reported as 0.0 in its place.

Java start-up and METEOR's paraphrase tables take several seconds, so the scorer is created (and warmed up) once
per call and its work runs in a background thread: the Java processes use the other core while torch encodes.
CIDEr's IDF weights come from the references of the evaluated set, so CIDEr depends on the set, as in COCO.

The Java side is kept on a leash: a caption longer than `MAX_JAVA_CHARS` is cut (at a word boundary) for these
metrics only, and the count is reported in the notes (METEOR's Java dies on a 100,000-character caption); a METEOR
process that dies or stops answering (a watchdog kills it after `meteor_timeout`) makes METEOR null with the reason
while BLEU, ROUGE-L and CIDEr are still reported, and the next model gets a fresh process. pycocoevalcap's Meteor
holds a lock across its pipe I/O and never releases it on an error, and its `__del__` takes the same lock: a dead
process would hang the teardown forever, so a failed scorer is discarded with a fresh lock (`_discard`).

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
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

COCO_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
SPICE_REASON = ("SPICE is not computed: pycocoevalcap's SPICE downloads Stanford CoreNLP models on first use and "
                "this toolkit never downloads at run time")
_SPACE = re.compile(r"\s+")
MAX_JAVA_CHARS = 5000  # far above any real caption; METEOR takes ~0.5 s for 10,000 characters, dies at 100,000


@dataclass
class CocoScores:
    corpus: dict[str, float] = field(default_factory=dict)
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    bleu_counts: np.ndarray | None = None  # (n, 10): testlen, reflen, guess_1..4, correct_1..4 per item
    reason: str | None = None  # set when the metrics could not be computed
    reasons: dict[str, str] = field(default_factory=dict)  # one metric that could not be computed (METEOR)
    notes: list[str] = field(default_factory=list)  # e.g. how many captions were truncated for the Java tools


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

    def __init__(self, meteor_timeout: float = 600.0) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coco")
        self._meteor = None
        self.meteor_timeout = meteor_timeout
        self._ready: Future = self._pool.submit(self._start)

    def _start(self) -> None:
        from pycocoevalcap.meteor.meteor import Meteor

        self._meteor = Meteor()
        self._meteor_call({0: ["a red vase"]}, {0: ["a red vase"]})  # loads the paraphrase tables

    def _meteor_call(self, gts: dict, res: dict) -> tuple[float, list[float]]:
        """`Meteor.compute_score` under a watchdog that kills a Java process that stops answering (its reads then
        end and raise); any failure discards the scorer, so the next call starts a fresh one."""
        from pycocoevalcap.meteor.meteor import Meteor

        if self._meteor is None or self._meteor.meteor_p.poll() is not None:
            _discard(self._meteor)
            self._meteor = Meteor()
        meteor = self._meteor
        watchdog = threading.Timer(self.meteor_timeout, meteor.meteor_p.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            return meteor.compute_score(gts, res)
        except BaseException as exc:
            timed_out = not watchdog.is_alive()
            _discard(meteor)
            self._meteor = None
            if timed_out:
                raise TimeoutError(f"no answer from METEOR's Java process within {self.meteor_timeout:g} s") from exc
            raise
        finally:
            watchdog.cancel()

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

        out = CocoScores()
        references, cut_refs = _truncate_all([clean(r) for r in references])
        generated, cut_gen = _truncate_all([clean(g) for g in generated])
        if cut_refs or cut_gen:
            out.notes.append(f"COCO metrics: {cut_gen} generated and {cut_refs} reference captions longer than "
                             f"{MAX_JAVA_CHARS} characters were truncated to it for these metrics only (the PTB "
                             "tokenizer and METEOR are Java programs that fail on very long lines)")
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({i: [{"caption": r}] for i, r in enumerate(references)})
        res = tokenizer.tokenize({i: [{"caption": g}] for i, g in enumerate(generated)})
        if len(gts) != len(references) or len(res) != len(generated):
            raise RuntimeError("PTB tokenizer returned a different number of captions")
        bleu, bleu_per, out.bleu_counts = _bleu(gts, res)
        for n in range(4):
            out.corpus[f"bleu_{n + 1}"] = float(bleu[n])
            out.per_sample[f"bleu_{n + 1}"] = np.asarray(bleu_per[n], dtype=np.float64)
        try:
            corpus, per = self._meteor_call(gts, res)
            out.corpus["meteor"] = float(corpus)
            out.per_sample["meteor"] = np.asarray(per, dtype=np.float64)
        except Exception as exc:  # the Java process died or hung: METEOR is null with the reason, the rest goes on
            log.warning("METEOR failed (%s: %s); it is reported as null", type(exc).__name__, exc)
            out.reasons["meteor"] = f"METEOR's Java process failed ({type(exc).__name__}: {str(exc)[:160]})"
        for name, scorer in (("rouge_l", Rouge()), ("cider", Cider())):
            corpus, per = scorer.compute_score(gts, res)
            out.corpus[name] = float(corpus)
            out.per_sample[name] = np.asarray(per, dtype=np.float64)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # after an input error: stop queued work
        _discard(self._meteor)
        self._meteor = None


def _discard(meteor) -> None:
    """Kill a Meteor's Java process and make its `__del__` safe: pycocoevalcap's `compute_score` leaves its lock
    held when the pipe breaks, and `__del__` acquires that lock (forever, at garbage collection or exit)."""
    if meteor is None:
        return
    meteor.lock = threading.Lock()
    process = getattr(meteor, "meteor_p", None)
    if process is None:
        return
    try:
        process.kill()
        process.wait(timeout=30)
    except (OSError, subprocess.SubprocessError):
        pass
    for stream in (process.stdin, process.stdout, process.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:  # a broken pipe while flushing what the dead process never read
            pass


def _truncate_all(captions: list[str]) -> tuple[list[str], int]:
    """Captions cut to MAX_JAVA_CHARS at a word boundary, and how many were cut."""
    out, cut = [], 0
    for caption in captions:
        if len(caption) > MAX_JAVA_CHARS:
            head = caption[:MAX_JAVA_CHARS]
            caption = head.rsplit(" ", 1)[0] if " " in head else head
            cut += 1
        out.append(caption)
    return out, cut


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
