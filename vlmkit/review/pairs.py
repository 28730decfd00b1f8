"""Which two captions a voter sees next: every model pair gets votes, spread over the items.

A leaderboard from pairwise votes needs every pair compared (the Bradley-Terry fit of a rating tool is undetermined for
a model that was never put against the others), so the next pair is the one with the fewest votes, counting the
votes already in the votes file and the pairs handed out but not yet answered (so two browsers voting at once are
spread too). Within the pair, the item with the fewest votes for that pair, preferring one this voter has not judged
for it; ties are broken at random. The display order is drawn at random for every vote.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from itertools import combinations

from vlmkit.votes import Vote


class PairScheduler:
    """Pick (item, model_a, model_b) for the next blind vote. Not thread-safe: the app calls it under its lock."""

    def __init__(self, models: list[str], captions: dict[str, dict[str, str]], votes: Iterable[Vote] = (),
                 rng: random.Random | None = None):
        # `captions`: item id -> {model: caption}. A pair is scheduled only on the items where both models have a
        # caption and the two captions differ (two identical texts leave nothing to judge).
        self.rank = {m: i for i, m in enumerate(models)}
        every = list(combinations(models, 2))
        self.items = {(a, b): sorted(i for i, t in captions.items() if a in t and b in t and t[a] != t[b])
                      for a, b in every}
        self.pairs = [p for p in every if self.items[p]]
        self.rng = rng or random.Random()
        self.pair_votes: Counter[tuple[str, str]] = Counter()
        self.item_votes: Counter[tuple[tuple[str, str], str]] = Counter()
        self.voter_seen: set[tuple[str, tuple[str, str], str]] = set()
        for vote in votes:
            self.record(vote.item_id, vote.left, vote.right, vote.voter)

    def canonical(self, a: str, b: str) -> tuple[str, str] | None:
        """The pair in the run's ranking order, or None when a model is not in this run."""
        if a not in self.rank or b not in self.rank or a == b:
            return None
        return (a, b) if self.rank[a] < self.rank[b] else (b, a)

    def record(self, item_id: str, a: str, b: str, voter: str) -> None:
        """Count one recorded vote (a pair with a model outside this run is ignored)."""
        pair = self.canonical(a, b)
        if pair is None:
            return
        self.pair_votes[pair] += 1
        self.item_votes[(pair, item_id)] += 1
        self.voter_seen.add((voter, pair, item_id))

    def next(self, voter: str, pending: Iterable[tuple[str, str, str]] = ()) -> tuple[str, str, str] | None:
        """(item id, model a, model b) in ranking order, or None when no pair of models shares an item.

        `pending`: (item, a, b) handed out and not yet answered; they count as votes for the choice only.
        """
        if not self.pairs:
            return None
        pair_load = Counter(self.pair_votes)
        item_load = Counter(self.item_votes)
        for item_id, a, b in pending:
            pair = self.canonical(a, b)
            if pair is not None:
                pair_load[pair] += 1
                item_load[(pair, item_id)] += 1
        fewest = min(pair_load[p] for p in self.pairs)
        pair = self.rng.choice([p for p in self.pairs if pair_load[p] == fewest])

        def load(item_id: str) -> tuple[int, int]:
            return ((voter, pair, item_id) in self.voter_seen, item_load[(pair, item_id)])

        best = min(load(i) for i in self.items[pair])
        item_id = self.rng.choice([i for i in self.items[pair] if load(i) == best])
        return item_id, pair[0], pair[1]

    def counts(self) -> list[dict]:
        """Votes recorded per pair (for the progress line and the tests)."""
        return [{"pair": list(p), "votes": self.pair_votes[p], "items": len(self.items[p])} for p in self.pairs]
