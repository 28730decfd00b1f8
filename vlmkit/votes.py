"""One votes format for every pairwise judgement: expert votes from the review app and pairwise judge verdicts.

A votes file is JSONL, one judgement a line::

    {"item_id": "...", "left": MODEL, "right": MODEL, "winner": "left"|"right"|"tie"|"both_bad",
     "voter": "...", "source": "human"|"judge:<name>", "time": ISO-8601, "shown_order": [MODEL, MODEL]}

``left``/``right`` name the models in the order the judgement refers to; ``shown_order`` is the order the voter (or the
judge's prompt) actually saw them, so position bias and swap consistency can be measured afterwards. Extra keys (a
comment, a judge's reason) are kept. The review app (``review.py``) and the pairwise judge write it with
:func:`append_votes`; ``rate.py`` reads it with :func:`read_votes`.

Appends are whole lines under an exclusive ``fcntl.flock`` on the file itself, flushed and fsynced before returning, so
two writers never interleave a line and a killed writer loses no vote that it had reported as recorded. A torn last
line (a writer killed mid-``write``) is the only partial line that can exist; readers report it instead of guessing.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, quote

WINNERS = ("left", "right", "tie", "both_bad")
REQUIRED_KEYS = ("item_id", "left", "right", "winner", "voter", "source", "time", "shown_order")


def now_iso() -> str:
    """The current time as ISO-8601 in UTC with seconds (the ``time`` field)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def vote_problem(vote: Any) -> str | None:
    """Why ``vote`` is not a valid judgement of the shared format, or None when it is."""
    if not isinstance(vote, dict):
        return f"a vote is a JSON object, got {type(vote).__name__}"
    missing = [key for key in REQUIRED_KEYS if key not in vote]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    for key in ("item_id", "left", "right", "voter", "source", "time"):
        if not isinstance(vote[key], str) or not vote[key]:
            return f"{key} must be a non-empty string, got {quote(vote[key])}"
    if vote["left"] == vote["right"]:
        return f"left and right are the same model {quote(vote['left'])}"
    if vote["winner"] not in WINNERS:
        return f"winner must be one of {', '.join(WINNERS)}, got {quote(vote['winner'])}"
    source = vote["source"]
    if source != "human" and not (source.startswith("judge:") and len(source) > len("judge:")):
        return f"source must be 'human' or 'judge:<name>', got {quote(source)}"
    shown = vote["shown_order"]
    if not (isinstance(shown, list) and len(shown) == 2 and sorted(shown) == sorted([vote["left"], vote["right"]])):
        return f"shown_order must list left and right once each, got {quote(shown)}"
    try:
        datetime.fromisoformat(vote["time"])
    except ValueError:
        return f"time is not ISO-8601: {quote(vote['time'])}"
    return None


@dataclass(frozen=True)
class Vote:
    """One validated judgement (the line as read, kept whole in ``raw``)."""

    item_id: str
    left: str
    right: str
    winner: str
    voter: str
    source: str
    time: str
    shown_order: tuple[str, str]
    raw: dict

    @classmethod
    def from_dict(cls, data: dict) -> Vote:
        return cls(
            item_id=data["item_id"], left=data["left"], right=data["right"], winner=data["winner"],
            voter=data["voter"], source=data["source"], time=data["time"],
            shown_order=(data["shown_order"][0], data["shown_order"][1]), raw=dict(data),
        )

    @property
    def swapped(self) -> bool:
        """True when the voter saw ``right`` first."""
        return self.shown_order[0] != self.left


def make_vote(
    *, item_id: str, left: str, right: str, winner: str, voter: str, source: str = "human",
    shown_order: Iterable[str] | None = None, time: str | None = None, **extra: Any,
) -> dict:
    """A vote dict in the shared format, validated (raises ValueError with the problem)."""
    vote = {
        "item_id": item_id, "left": left, "right": right, "winner": winner, "voter": voter, "source": source,
        "time": time or now_iso(), "shown_order": list(shown_order) if shown_order is not None else [left, right],
        **extra,
    }
    problem = vote_problem(vote)
    if problem:
        raise ValueError(problem)
    return vote


def append_votes(path: str | os.PathLike, votes: Iterable[dict]) -> int:
    """Append validated votes as whole lines under an exclusive lock; flushed and fsynced before returning.

    Returns the number of lines written. A file whose last line lacks its newline (a writer killed mid-write) gets a
    newline first, so the new vote never joins a torn line.
    """
    lines = []
    for vote in votes:
        problem = vote_problem(vote)
        if problem:
            raise ValueError(problem)
        lines.append(json.dumps(vote, ensure_ascii=False, sort_keys=False) + "\n")
    if not lines:
        return 0
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        prefix = b""
        if size:
            with open(target, "rb") as tail:
                tail.seek(size - 1)
                if tail.read(1) != b"\n":
                    prefix = b"\n"
        os.write(fd, prefix + "".join(lines).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the flock
    return len(lines)


def iter_votes(path: str | os.PathLike) -> Iterator[tuple[int, Vote]]:
    """(line number, Vote) for every line; a bad line is an InputError naming the file and line."""
    target = Path(path)
    try:
        handle = open(target, encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{target}: cannot read: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                torn = "" if line.endswith("\n") else " (a torn last line: a writer was killed mid-write)"
                raise InputError(f"{target}: line {number}: not JSON{torn}: {exc}") from None
            problem = vote_problem(data)
            if problem:
                raise InputError(f"{target}: line {number}: {problem}")
            yield number, Vote.from_dict(data)


def read_votes(paths: Iterable[str | os.PathLike]) -> list[Vote]:
    """Every vote of every file, in file order."""
    return [vote for path in paths for _, vote in iter_votes(path)]
