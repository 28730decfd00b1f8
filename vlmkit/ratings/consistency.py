"""How far to trust a voter: swap consistency, position bias and length bias per source.

- Swap consistency (FastChat #3911 measured 12.9 % of GPT-4 verdicts flipping): for one source, the same voter judged
  the same two models on the same item in both shown orders; the pair *flips* when the two verdicts (winner model,
  tie or both_bad) differ. Reported as pairs, flips, flip rate and consistency = 1 − flip rate.
- Position bias: of the decided votes (a winner), the share won by the caption shown first (0.5 = no bias).
- Length bias (with captions): of the decided votes between captions of different length, the share won by the
  longer one (FastChat reports 68 % for pairwise GPT-4 judgements).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from vlmkit.votes import Vote


def verdict(vote: Vote) -> str:
    """The order-free verdict: the winning model's name, 'tie' or 'both_bad'."""
    if vote.winner == "left":
        return "model:" + vote.left
    if vote.winner == "right":
        return "model:" + vote.right
    return vote.winner


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def swap_consistency(votes: Sequence[Vote]) -> dict[str, dict[str, Any]]:
    """{source: {pairs, flipped, flip_rate, consistency, position_first_wins, decided_votes, votes}}."""
    by_source: dict[str, list[Vote]] = defaultdict(list)
    for vote in votes:
        by_source[vote.source].append(vote)
    out: dict[str, dict[str, Any]] = {}
    for source, group in sorted(by_source.items()):
        orders: dict[tuple, dict[str, str]] = defaultdict(dict)
        for vote in group:
            key = (vote.item_id, vote.voter, frozenset((vote.left, vote.right)))
            orders[key].setdefault(vote.shown_order[0], verdict(vote))  # first verdict per shown order
        pairs = [seen for seen in orders.values() if len(seen) == 2]
        flipped = sum(len(set(seen.values())) > 1 for seen in pairs)
        decided = [v for v in group if v.winner in ("left", "right")]
        first_wins = sum((v.left if v.winner == "left" else v.right) == v.shown_order[0] for v in decided)
        rate = _share(flipped, len(pairs))
        out[source] = {
            "votes": len(group), "pairs": len(pairs), "flipped": flipped, "flip_rate": rate,
            "consistency": None if rate is None else 1.0 - rate,
            "reason": None if pairs else "no pair was judged in both shown orders by the same voter",
            "decided_votes": len(decided), "position_first_wins": _share(first_wins, len(decided)),
        }
    return out


def length_bias(votes: Sequence[Vote], lengths: Mapping[tuple[str, str], int]) -> dict[str, dict[str, Any]]:
    """{source: {decided_votes_unequal_length, longer_wins, longer_win_rate}}."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for vote in votes:
        if vote.winner not in ("left", "right"):
            continue
        left, right = lengths[(vote.left, vote.item_id)], lengths[(vote.right, vote.item_id)]
        if left == right:
            continue
        longer = vote.left if left > right else vote.right
        winner = vote.left if vote.winner == "left" else vote.right
        tally[vote.source][0] += winner == longer
        tally[vote.source][1] += 1
    return {source: {"decided_votes_unequal_length": n, "longer_wins": hits, "longer_win_rate": _share(hits, n)}
            for source, (hits, n) in sorted(tally.items())}
