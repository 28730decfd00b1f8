"""review.py without a browser: reading a compare run, sorting and filtering, pair scheduling, the HTTP API (FastAPI's
TestClient), path traversal and Host checks, votes on disk, the live caption panel and the one-line errors."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest

from tests.review_helpers import REPO, compare_run, digest, per_sample
from vlmkit.io import InputError
from vlmkit.review.data import load_run, select_items
from vlmkit.review.pairs import PairScheduler
from vlmkit.votes import make_vote, vote_problem


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compare_run(tmp_path_factory.mktemp("review_run"))


@pytest.fixture()
def client(results: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from vlmkit.review.app import create_app

    app = create_app(load_run(results), tmp_path / "votes.jsonl", seed=0)
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        c.votes = tmp_path / "votes.jsonl"
        yield c


def test_load_run_reads_every_item_caption_and_score(results: Path) -> None:
    run = load_run(results)
    expected = per_sample(results)
    summary = json.loads((results / "batch_evaluation_summary.json").read_text())
    assert run.models == summary["ranking"]
    assert len(run.items) == 6 and all(len(item.views) == 6 for item in run.items)
    for item in run.items:
        for model in run.models:
            record = expected[model][item.id]
            assert item.captions[model] == record["generated"] and item.reference == record["reference"]
            assert item.scores[model]["overall_score"] == record["overall_score"]
            assert item.scores[model]["retrieval_rank"] == record["retrieval_rank"]
    assert "overall_score" in run.metrics and "clip_score" not in run.metrics  # no CLIP: no per-item values


def test_sorting_and_filtering_match_an_independent_computation(results: Path) -> None:
    run = load_run(results)
    rows = per_sample(results)
    ids = list(rows[run.models[0]])
    spread = {i: max(r[i]["lexical_similarity"] for r in rows.values()) - min(r[i]["lexical_similarity"]
                                                                              for r in rows.values()) for i in ids}
    got = [i.id for i in select_items(run, sort="disagreement", metric="lexical_similarity")]
    assert got == sorted(ids, key=lambda i: -spread[i])
    assert [i.id for i in select_items(run, sort="disagreement", metric="lexical_similarity", descending=False)] \
        == got[::-1]
    model = run.models[2]
    got = [i.id for i in select_items(run, sort="model", metric="semantic_similarity", model=model)]
    assert got == sorted(ids, key=lambda i: -rows[model][i]["semantic_similarity"])
    # a lower-is-better metric: best (rank 1) first
    got = [i.id for i in select_items(run, sort="model", metric="retrieval_rank", model=model)]
    assert [rows[model][i]["retrieval_rank"] for i in got] == sorted(rows[model][i]["retrieval_rank"] for i in ids)
    assert [i.id for i in select_items(run, sort="id")] == sorted(ids)
    assert [i.id for i in select_items(run)] == ids
    hydria = [i.id for i in select_items(run, q="HYDRIA")]
    assert hydria and all("hydria" in (run.by_id[i].reference + " ".join(run.by_id[i].captions.values())).lower()
                          for i in hydria)
    assert len(hydria) < 6
    assert [i.id for i in select_items(run, q=ids[3][:13])] == [ids[3]]
    with pytest.raises(ValueError, match="metric must be one of"):
        select_items(run, sort="disagreement", metric="clip_score")


def test_scheduler_gives_every_pair_votes_and_spreads_items() -> None:
    models = ["a", "b", "c", "d"]
    captions = {f"item{i}": {m: f"{m} says {i}" for m in models} for i in range(5)}
    captions["only_ab"] = {"a": "one", "b": "two"}
    captions["same_cd"] = {"a": "x", "b": "y", "c": "same", "d": "same"}  # identical: (c, d) is never asked here
    scheduler = PairScheduler(models, captions, rng=random.Random(0))
    assert len(scheduler.pairs) == 6
    seen = Counter()
    for _ in range(60):
        item, a, b = scheduler.next("v")
        assert a in captions[item] and b in captions[item] and models.index(a) < models.index(b)
        scheduler.record(item, a, b, "v")
        seen[(a, b)] += 1
    assert set(seen) == set(combinations(models, 2)) and set(seen.values()) == {10}
    # within pair (a, b), 7 items, 10 votes: every item once before any twice (at most one apart)
    per_item = Counter(i for (p, i), n in scheduler.item_votes.items() if p == ("a", "b") for _ in range(n))
    assert max(per_item.values()) - min(per_item.values()) <= 1 and len(per_item) == 7
    assert scheduler.item_votes[(("c", "d"), "same_cd")] == 0 and "same_cd" not in scheduler.items[("c", "d")]
    # pending pairs count: two browsers asking at once get different pairs
    first = scheduler.next("v")
    second = scheduler.next("w", pending=[first])
    assert (first[1], first[2]) != (second[1], second[2])


def test_scheduler_counts_existing_votes_and_prefers_unseen_items() -> None:
    from vlmkit.votes import Vote

    existing = [Vote.from_dict(make_vote(item_id="x", left="b", right="a", winner="tie", voter="ann"))
                for _ in range(3)]
    texts = {"a": "1", "b": "2", "c": "3"}
    scheduler = PairScheduler(["a", "b", "c"], {"x": texts, "y": texts}, existing, rng=random.Random(1))
    assert scheduler.pair_votes[("a", "b")] == 3
    for _ in range(6):
        _, a, b = scheduler.next("ann")
        assert (a, b) != ("a", "b")  # the pair with three votes waits until the others catch up
        scheduler.record("x", a, b, "bob")
    scheduler = PairScheduler(["a", "b"], {"x": texts, "y": texts}, existing, rng=random.Random(2))
    assert {scheduler.next("ann")[0] for _ in range(20)} == {"y"}  # ann judged (a, b) on x already


def test_api_items_views_and_one_item(client, results: Path) -> None:
    meta = client.get("/api/meta").json()
    assert meta["items"] == 6 and meta["pairs"] == 3 and meta["live_models"] == []
    body = client.get("/api/items", params={"sort": "disagreement", "metric": "overall_score"}).json()
    assert body["total"] == 6 and len(body["items"]) == 6
    spreads = [item["spread"]["overall_score"] for item in body["items"]]
    assert spreads == sorted(spreads, reverse=True)
    first = body["items"][0]
    assert [c["model"] for c in first["captions"]] == meta["models"]
    image = client.get(first["views"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == (REPO / "examples" / "multiview_images").glob(
        f"{first['id']}_*/front.*").__next__().read_bytes()
    one = client.get(f"/api/item/{first['id']}").json()
    assert one["id"] == first["id"] and "prev" in one and "next" in one
    assert client.get("/api/item/nope").status_code == 404
    assert client.get("/api/items", params={"sort": "bogus"}).status_code == 422
    every = sorted(i["id"] for i in body["items"])
    paged = client.get("/api/items", params={"sort": "id", "offset": 2, "limit": 3}).json()
    assert [i["id"] for i in paged["items"]] == every[2:5] and paged["matched"] == 6 and paged["total"] == 6
    assert client.get("/api/items", params={"limit": 0}).status_code == 422
    page = client.get(f"/item/{first['id']}")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from outside
    for name in ("app.js", "app.css"):
        text = client.get(f"/static/{name}").text
        assert "http://" not in text and "https://" not in text
    assert "innerHTML" not in client.get("/static/app.js").text  # text is set with textContent only


def test_paths_outside_the_results_and_images_are_refused(client, results: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    link = results / "link_out.txt"
    link.symlink_to(secret)
    try:
        assert client.get("/results/model_comparison_table.md").text == (results / "model_comparison_table.md") \
            .read_text()
        report = client.get("/results/evaluation_report.html")
        assert report.status_code == 200 and "sandbox" in report.headers["content-security-policy"]
        item = load_run(results).items[0].id
        for path in ("/results/link_out.txt",
                     "/results/%2e%2e/%2e%2e/etc/passwd", "/results/..%2f..%2fetc%2fpasswd", f"/results/{secret}",
                     "/results//etc/passwd", "/results/", "/results/%00", f"/views/{item}/..%2f..%2fgroundTruth.json",
                     f"/views/{item}/notaview", "/views/nope/front", "/static/../review.py", "/static/index.html"):
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert "secret" not in response.text and "root:" not in response.text
    finally:
        link.unlink()
    # a symlinked view that leaves the images folder is refused too
    from fastapi.testclient import TestClient

    from vlmkit.review.app import create_app

    images = tmp_path / "images"
    folder = next((REPO / "examples" / "multiview_images").iterdir())
    (images / folder.name).mkdir(parents=True)
    (images / folder.name / "front.jpg").symlink_to(folder / "front.jpg")
    (images / folder.name / "back.jpg").write_bytes((folder / "back.jpg").read_bytes())
    with TestClient(create_app(load_run(results, images), tmp_path / "v.jsonl"),
                    base_url="http://127.0.0.1:7860") as c:
        item = folder.name.split("_ac")[0]
        assert c.get(f"/views/{item}/back").status_code == 200
        assert c.get(f"/views/{item}/front").status_code == 404


def test_raw_traversal_paths_against_the_real_server(results: Path, tmp_path: Path) -> None:
    """The paths exactly as sent (an HTTP client library would normalise `..` away before sending)."""
    import http.client

    from tests.review_helpers import review_server

    with review_server(results, tmp_path / "votes.jsonl") as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        item = load_run(results).items[0].id
        for raw in ("/results/../../../../etc/passwd", "/results/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                    "/results/%2E%2E/%2E%2E/%2E%2E/etc/passwd", f"/views/{item}/../../../../etc/passwd",
                    "/static/../../review.py", "/results/../votes.jsonl/../../groundTruth.json"):
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", raw)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            conn.close()
            assert response.status == 404 and "root:" not in text and "import" not in text, (raw, response.status)


def test_a_foreign_host_header_is_refused(client) -> None:
    assert client.get("/api/meta", headers={"host": "evil.example:7860"}).status_code == 421
    assert client.get("/api/meta", headers={"host": "localhost:7860"}).status_code == 200
    assert client.get("/api/meta", headers={"host": "[::1]:7860"}).status_code == 200


def test_votes_are_on_disk_in_the_shared_format_before_the_answer(client, results: Path) -> None:
    run = load_run(results)
    lines_before = 0
    for choice in ("left", "right", "tie", "both_bad", "left", "right"):
        pair = client.get("/api/ab/next", params={"voter": "  Dr.  Ann  "}).json()
        assert set(pair) == {"token", "item_id", "reference", "views", "captions", "votes"}  # no model names
        answer = client.post("/api/ab/vote", json={"token": pair["token"], "choice": choice, "voter": "Dr. Ann",
                                                   "comment": "handles?" if choice == "tie" else ""})
        assert answer.status_code == 200 and answer.json()["recorded"] is True
        lines = client.votes.read_text().splitlines()
        assert len(lines) == lines_before + 1  # written before the response came back
        lines_before += 1
        vote = json.loads(lines[-1])
        assert vote_problem(vote) is None and vote["voter"] == "Dr. Ann" and vote["source"] == "human"
        item = run.by_id[vote["item_id"]]
        shown_first = next(m for m in run.models if item.captions[m] == pair["captions"][0])
        assert vote["shown_order"][0] == shown_first and item.captions[vote["shown_order"][1]] == pair["captions"][1]
        assert run.models.index(vote["left"]) < run.models.index(vote["right"])  # canonical: ranking order
        if choice in ("left", "right"):
            chosen = vote["shown_order"][0 if choice == "left" else 1]
            assert vote[vote["winner"]] == chosen
        else:
            assert vote["winner"] == choice
        assert ("comment" in vote) == (choice == "tie")
        # the same token cannot vote twice
        again = client.post("/api/ab/vote", json={"token": pair["token"], "choice": "left", "voter": "Dr. Ann"})
        assert again.status_code == 410
    recorded = [json.loads(line) for line in client.votes.read_text().splitlines()]
    swapped = [v["shown_order"] != [v["left"], v["right"]] for v in recorded]
    assert any(swapped) and not all(swapped)  # the order is drawn per vote (seed 0)
    # one pair at a time per voter: asking again (a reload) retires the earlier pair
    state = client.app.state.review
    first = client.get("/api/ab/next", params={"voter": "x"}).json()
    pair = client.get("/api/ab/next", params={"voter": "x"}).json()
    client.get("/api/ab/next", params={"voter": "y"})
    assert len(state.pending) == 2 and first["token"] not in state.pending
    assert client.post("/api/ab/vote", json={"token": first["token"], "choice": "tie", "voter": "x"}).status_code == 410
    assert client.post("/api/ab/vote", json={"token": pair["token"], "choice": "A", "voter": "x"}).status_code == 422
    assert client.post("/api/ab/vote", json={"token": pair["token"], "choice": "tie", "voter": " "}).status_code == 422
    assert client.get("/api/ab/next", params={"voter": ""}).status_code == 422
    assert len(client.votes.read_text().splitlines()) == 6


def test_bad_existing_votes_file_is_an_input_error(results: Path, tmp_path: Path) -> None:
    from vlmkit.review.app import create_app

    votes = tmp_path / "votes.jsonl"
    votes.write_text('{"item_id": "x"}\n')
    with pytest.raises(InputError, match="line 1: missing key"):
        create_app(load_run(results), votes)


def test_live_caption_with_a_tiny_model_writes_nothing(results: Path, tmp_path: Path, tiny_qwen2_5_vl_dir) -> None:
    from fastapi.testclient import TestClient

    from vlmkit.review.app import create_app
    from vlmkit.review.live import LiveCaptioner

    before = digest(results)
    live = LiveCaptioner([tiny_qwen2_5_vl_dir], device="cpu", max_new_tokens=8)
    run = load_run(results)
    with TestClient(create_app(run, tmp_path / "votes.jsonl", live=live), base_url="http://127.0.0.1:7860") as c:
        item = run.items[0].id
        assert c.get("/api/meta").json()["live_models"] == [tiny_qwen2_5_vl_dir.name]
        prompt = c.get(f"/api/item/{item}").json()["live_prompt"]
        assert "6 views: front, back, left, right, top, bottom" in prompt
        answer = c.post("/api/live", json={"item_id": item, "model": 0, "prompt": prompt})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body["caption"], str) and body["views"] == ["front", "back", "left", "right", "top", "bottom"]
        # the same as the backend gives directly (greedy): the panel goes through the one transformers backend
        from vlmkit.generation.hf_backend import HFCaptioner
        from vlmkit.generation.runner import CaptionRequest
        from vlmkit.generation.sampling import GenerationSettings
        from vlmkit.images import open_rgb

        direct = HFCaptioner(tiny_qwen2_5_vl_dir, settings=GenerationSettings(max_new_tokens=8), device="cpu")
        paths = list(run.items[0].views.values())
        assert body["caption"] == direct.caption([CaptionRequest(prompt, [open_rgb(p) for p in paths], paths,
                                                                 list(run.items[0].views))])[0]
        assert c.post("/api/live", json={"item_id": item, "model": 5, "prompt": "x"}).status_code == 422
        assert c.post("/api/live", json={"item_id": item, "model": 0, "prompt": " "}).status_code == 422
    assert digest(results) == before and not (tmp_path / "votes.jsonl").exists()


def _review(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "review.py"), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_bad_input_is_one_error_line_before_serving(results: Path, tmp_path: Path) -> None:
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    (not_a_run / "compare_x.json").write_text("{}")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = str(busy.getsockname()[1])
    bad_votes = tmp_path / "bad.jsonl"
    bad_votes.write_text("not json\n")
    cases = {
        "results folder not found": ["--results", str(tmp_path / "missing")],
        "not a compare run": ["--results", str(not_a_run)],
        "port already in use": ["--results", str(results), "--votes", str(tmp_path / "v.jsonl"), "--port", port],
        "line 1: not JSON": ["--results", str(results), "--votes", str(bad_votes)],
        "--images_dir not found": ["--results", str(results), "--images_dir", str(tmp_path / "no_images")],
        "not a model folder": ["--results", str(results), "--live_model", str(tmp_path)],
    }
    try:
        for problem, args in cases.items():
            done = _review(*args)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1, (problem, done.stderr)
            assert lines[0].startswith("error: ") and problem in lines[0], (problem, done.stderr)
    finally:
        busy.close()
    assert not (tmp_path / "v.jsonl").exists()
    help_text = _review("--help")
    assert help_text.returncode == 0 and "--live_model" in help_text.stdout and "127.0.0.1" in help_text.stdout
