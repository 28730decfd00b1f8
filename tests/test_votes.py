"""The shared votes format (vlmkit/votes.py): validation, locked appends from many processes, torn lines."""

import json
import multiprocessing

import pytest

from vlmkit.io import InputError
from vlmkit.votes import append_votes, make_vote, read_votes, vote_problem


def _vote(**over):
    base = dict(item_id="a_1", left="m1", right="m2", winner="left", voter="ann", shown_order=["m2", "m1"],
                time="2026-12-04T10:00:00+00:00")
    base.update(over)
    return make_vote(**base)


def test_a_valid_vote_round_trips_with_extra_keys(tmp_path):
    path = tmp_path / "votes.jsonl"
    assert append_votes(path, [_vote(comment="nice")]) == 1
    (vote,) = read_votes([path])
    assert (vote.left, vote.right, vote.winner, vote.swapped) == ("m1", "m2", "left", True)
    assert vote.raw["comment"] == "nice"


@pytest.mark.parametrize("over, problem", [
    ({"winner": "draw"}, "winner must be one of"),
    ({"right": "m1", "shown_order": ["m1", "m1"]}, "same model"),
    ({"source": "judge:"}, "source must be"),
    ({"shown_order": ["m1", "m3"]}, "shown_order must list"),
    ({"time": "yesterday"}, "not ISO-8601"),
])
def test_invalid_votes_are_refused(over, problem):
    data = dict(item_id="a", left="m1", right="m2", winner="left", voter="v", source="human",
                time="2026-12-04T10:00:00+00:00", shown_order=["m1", "m2"])
    data.update(over)
    assert problem in vote_problem(data)


def test_a_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "votes.jsonl"
    append_votes(path, [_vote()])
    with open(path, "a") as handle:
        handle.write(json.dumps({"item_id": "x"}) + "\n")
    with pytest.raises(InputError, match=r"votes.jsonl: line 2: missing key"):
        read_votes([path])


def test_a_torn_last_line_is_not_joined_by_the_next_vote(tmp_path):
    path = tmp_path / "votes.jsonl"
    append_votes(path, [_vote()])
    with open(path, "a") as handle:
        handle.write('{"item_id": "tor')
    append_votes(path, [_vote(item_id="b_2")])
    lines = path.read_text().splitlines()
    assert lines[1] == '{"item_id": "tor' and json.loads(lines[2])["item_id"] == "b_2"


def _writer(path, index):
    for n in range(50):
        append_votes(path, [_vote(item_id=f"w{index}_{n}", comment="x" * 5000)])


def test_concurrent_writers_never_interleave_a_line(tmp_path):
    path = tmp_path / "votes.jsonl"
    procs = [multiprocessing.Process(target=_writer, args=(path, i)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    votes = read_votes([path])
    assert sorted(v.item_id for v in votes) == sorted(f"w{i}_{n}" for i in range(3) for n in range(50))
