"""review.py's server: opening a run, listing and sorting its items, and the blind-vote round trip with fsync.

    python bench/bench_review.py [--items 96 10000] [--models 4] [--votes 200] [--threads 4]

Writes a synthetic compare run (the files compare.py writes: summary, compare_<model>.json, _per_sample.jsonl with
a caption, the reference and eight per-item scores; no renders) for each --items size, then times
(a) `load_run` (reading and indexing the run), (b) GET /api/items sorted by disagreement (the first page of 50 cards
the browse screen asks for, and the whole list) and (c) one blind vote = GET /api/ab/next + POST /api/ab/vote (the
vote appended, flushed and fsynced before the answer), sequentially and from --threads clients at once, through a
real uvicorn on 127.0.0.1 and urllib. The votes file is checked after: every line whole and valid. Other processes
may share the CPU: quote the best of a few runs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vlmkit.review.app import create_app  # noqa: E402
from vlmkit.review.data import load_run  # noqa: E402
from vlmkit.votes import read_votes  # noqa: E402

WORDS = "attic black red figure amphora lekythos hydria krater warrior meander band shoulder foot draped woman".split()
METRICS = ("overall_score", "semantic_similarity", "lexical_similarity", "bleu_4", "meteor", "rouge_l", "cider")


def make_run(folder: Path, n_items: int, n_models: int, seed: int = 0) -> Path:
    rnd = random.Random(seed)
    folder.mkdir(parents=True)
    refs = [" ".join(rnd.choices(WORDS, k=25)) for _ in range(n_items)]
    rows = []
    for m in range(n_models):
        name = f"model{m}"
        with open(folder / f"compare_{name}_per_sample.jsonl", "w") as handle:
            for i in range(n_items):
                record = {"id": f"{i:08x}-0000-0000-0000-000000000000_{i}", "generated": " ".join(rnd.choices(
                    WORDS, k=15)), "reference": refs[i], **{k: rnd.random() for k in METRICS},
                    "retrieval_rank": rnd.randint(1, 10)}
                handle.write(json.dumps(record) + "\n")
        result = {"metadata": {"per_sample_file": f"compare_{name}_per_sample.jsonl", "images_dir": None}}
        (folder / f"compare_{name}.json").write_text(json.dumps(result))
        rows.append({"model_name": name, "result_file": str(folder / f"compare_{name}.json")})
    (folder / "batch_evaluation_summary.json").write_text(json.dumps({"models": rows, "protocol": "vlmkit"}))
    return folder


def request(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read())


def one_vote(base: str, voter: str) -> float:
    start = time.perf_counter()
    pair = request(f"{base}/api/ab/next?voter={voter}")
    request(f"{base}/api/ab/vote", {"token": pair["token"], "choice": "tie", "voter": voter})
    return time.perf_counter() - start


def bench(n_items: int, n_models: int, n_votes: int, threads: int, tmp: Path) -> dict:
    import uvicorn

    run_dir = make_run(tmp / f"run{n_items}", n_items, n_models)
    start = time.perf_counter()
    run = load_run(run_dir)
    load_s = time.perf_counter() - start
    votes = tmp / f"votes{n_items}.jsonl"
    app = create_app(run, votes)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        list_s, page_s = [], []
        for _ in range(3):
            t = time.perf_counter()
            body = request(f"{base}/api/items?sort=disagreement&metric=overall_score")
            list_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            page = request(f"{base}/api/items?sort=disagreement&metric=overall_score&offset=0&limit=50")
            page_s.append(time.perf_counter() - t)
        assert len(body["items"]) == n_items and len(page["items"]) == min(50, n_items)
        sequential = [one_vote(base, "seq") for _ in range(n_votes)]
        per_thread = n_votes // threads
        start = time.perf_counter()
        workers = [threading.Thread(target=lambda v=f"t{i}": [one_vote(base, v) for _ in range(per_thread)])
                   for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        parallel_s = time.perf_counter() - start
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    recorded = read_votes([votes])  # raises on any torn or invalid line
    assert len(recorded) == n_votes + per_thread * threads
    return {"items": n_items, "models": n_models, "load_s": load_s, "list_s": min(list_s), "page_s": min(page_s),
            "vote_ms_median": 1000 * statistics.median(sequential),
            "vote_ms_p95": 1000 * sorted(sequential)[int(0.95 * len(sequential)) - 1],
            "parallel_votes_per_s": per_thread * threads / parallel_s, "threads": threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[96, 10000])
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--votes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.items:
            r = bench(n, args.models, args.votes, args.threads, Path(tmp))
            print(f"{r['items']:>6} items x {r['models']} models: load_run {r['load_s']:.3f} s, "
                  f"/api/items by disagreement: first 50 (what the page asks) {r['page_s'] * 1000:.0f} ms, all "
                  f"{r['list_s'] * 1000:.0f} ms; vote round trip median "
                  f"{r['vote_ms_median']:.1f} ms (p95 {r['vote_ms_p95']:.1f}), {r['threads']} clients at once "
                  f"{r['parallel_votes_per_s']:.0f} votes/s", flush=True)


if __name__ == "__main__":
    main()
