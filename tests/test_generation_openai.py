"""--backend openai against a loopback STAND-IN server (demo.openai_standin: not a model, not a real API).

The stand-in records every request and injects faults per item, so these tests check what the server receives
(image order, base64 bytes, decoding fields, the key header), how every fault ends (retried and captioned, or listed
and retried by --resume), that nothing is sent twice after a success, that concurrency never exceeds the flag, and
that the API key appears in no output and no log.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import caption
import eval_vqa
import internvl
import qwen
from dataprocess import augment
from demo.openai_standin import SERVED_MODEL, Standin, key_of_file
from tests.fixtures.vqa_data import write_textvqa
from vlmkit.generation import openai_backend
from vlmkit.generation.openai_backend import backoff_delay, parse_retry_after
from vlmkit.ids import VIEWS, item_id
from vlmkit.io import InputError, read_json, read_jsonl
from vlmkit.prompt import MULTIVIEW_PROMPT, build_prompt
from vlmkit.samples import caption_sample

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-standin-SECRET-7f3a9c"
MODEL = "vendor/vlm-standin"  # --api_model; output name and data_by: its last segment
NAME = "vlm-standin"


@pytest.fixture()
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STANDIN_KEY", KEY)
    return KEY


def api_argv(url: str, *extra: str) -> list[str]:
    return ["--backend", "openai", "--api_base", url, "--api_model", MODEL, "--api_key_env", "STANDIN_KEY",
            "--no_progress", *extra]


def folders(images: Path) -> list[Path]:
    return sorted(p for p in images.iterdir() if p.is_dir())


def all_text(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file())


def test_requests_match_the_views_and_the_record_layout_equals_the_hf_run(
        tiny_qwen2_5_vl_dir: Path, repo_root: Path, tmp_path: Path, api_key: str,
        capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    images = repo_root / "examples" / "multiview_images"
    hf_out, api_out = tmp_path / "hf", tmp_path / "api"
    assert qwen.main(["--model_path", str(tiny_qwen2_5_vl_dir), "--input_dir", str(images), "--output_dir",
                      str(hf_out), "--max_new_tokens", "6", "--min_pixels", "784", "--max_pixels", "3136",
                      "--data_by", "m", "--output_name", "image_m.json", "--no_progress"]) == 0
    with Standin(delay=0.02) as server:
        assert qwen.main(api_argv(server.url, "--input_dir", str(images), "--output_dir", str(api_out),
                                  "--max_new_tokens", "6", "--data_by", "m", "--output_name", "image_m.json")) == 0
    state = server.state
    hf_records, api_records = read_json(hf_out / "image_m.json"), read_json(api_out / "image_m.json")
    assert [{k: v for k, v in r.items() if k != "caption"} for r in api_records] == \
        [{k: v for k, v in r.items() if k != "caption"} for r in hf_records]  # same ids, order, images, data_by
    assert [set(r) for r in api_records] == [set(r) for r in hf_records]
    hf_report, api_report = (read_json(d / "m_caption_generation_report.json") for d in (hf_out, api_out))
    assert set(api_report) == set(hf_report) and api_report["totals"] == hf_report["totals"]

    # One request per object, its six views as base64 data URLs of the files' own bytes, in --views order, then
    # the prompt; greedy decoding as explicit fields.
    assert len(state.requests) == 6 and state.max_in_flight <= 8
    by_key = {openai_key(body): body for body in state.requests}
    for folder in folders(images):
        body = by_key[key_of_file(folder / "front.jpg")]
        content = body["messages"][0]["content"]
        assert [p["type"] for p in content] == ["image_url"] * 6 + ["text"]
        sent = [base64.b64decode(p["image_url"]["url"].removeprefix("data:image/jpeg;base64,")) for p in content[:6]]
        assert sent == [(folder / f"{view}.jpg").read_bytes() for view in VIEWS]
        assert content[6]["text"] == build_prompt(MULTIVIEW_PROMPT, list(VIEWS))
        assert body["model"] == MODEL and body["max_tokens"] == 6 and body["temperature"] == 0 and body["seed"] == 0
        assert "top_p" not in body and "top_k" not in body and "repetition_penalty" not in body
    record = {item_id(f.name): r["caption"] for f, r in zip(folders(images), api_records, strict=True)}
    assert all(key_of_file(f / "front.jpg") in record[item_id(f.name)] for f in folders(images))  # mapped by id

    assert api_report["settings"]["model_path"] is None  # qwen.py's default folder played no part
    backend = api_report["settings"]["backend"]
    assert backend["backend"] == "openai" and backend["api_model"] == MODEL
    assert backend["endpoint_host"] == server.url.removeprefix("http://").removesuffix("/v1")
    assert backend["served_model_ids"] == [SERVED_MODEL] and backend["generation"]["max_new_tokens"] == 6
    assert backend["requests"] == {"requests": 6, "retries": 0, "succeeded": 6, "failed": 0, "truncated": 0}
    assert {h["authorization"] for h in state.headers} == {f"Bearer {KEY}"}  # the key goes to the server only
    captured = capsys.readouterr()
    assert KEY not in all_text(api_out) + captured.out + captured.err + caplog.text


def openai_key(body: dict) -> str:
    from demo.openai_standin import request_key

    return request_key(body)


def test_sampling_flags_become_request_fields(repo_root: Path, tmp_path: Path, api_key: str) -> None:
    with Standin() as server:
        assert qwen.main(api_argv(server.url, "--single_model", str(folders(repo_root / "examples" /
                                                                           "multiview_images")[0]),
                                  "--output_dir", str(tmp_path), "--views", "top,front", "--temperature", "0.7",
                                  "--top_p", "0.9", "--top_k", "20", "--repetition_penalty", "1.1", "--seed", "3",
                                  "--max_new_tokens", "40")) == 0
    (body,) = server.state.requests
    assert {k: body[k] for k in ("max_tokens", "temperature", "top_p", "seed", "top_k", "repetition_penalty")} == \
        {"max_tokens": 40, "temperature": 0.7, "top_p": 0.9, "seed": 3, "top_k": 20, "repetition_penalty": 1.1}
    folder = folders(repo_root / "examples" / "multiview_images")[0]
    sent = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for p in body["messages"][0]["content"][:2]]
    assert sent == [(folder / "top.jpg").read_bytes(), (folder / "front.jpg").read_bytes()]


def test_every_injected_fault_ends_as_documented_and_resume_retries_the_failures(
        repo_root: Path, tmp_path: Path, api_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    images = repo_root / "examples" / "multiview_images"
    keys = [key_of_file(f / "front.jpg") for f in folders(images)]
    ids = [item_id(f.name) for f in folders(images)]
    faults = {keys[0]: ["429", "ok"], keys[1]: ["500", "drop", "ok"], keys[2]: ["timeout", "ok"],
              keys[3]: ["length"], keys[4]: ["400"], keys[5]: ["500", "500", "500", "500"]}
    waits: list[tuple[int, float | None]] = []
    real_backoff = openai_backend.backoff_delay

    def recorded(retry: int, retry_after: float | None) -> float:
        waits.append((retry, retry_after))
        return min(real_backoff(retry, retry_after), 0.05)

    monkeypatch.setattr(openai_backend, "backoff_delay", recorded)
    out = tmp_path / "out"
    argv = api_argv("", "--input_dir", str(images), "--output_dir", str(out), "--concurrency", "3",
                    "--max_retries", "2", "--timeout", "2")  # generous: a loaded CI machine is slow
    with Standin(faults=faults, retry_after="0.25", hang=4.0) as server:
        argv[argv.index("--api_base") + 1] = server.url
        assert qwen.main(argv) == 1
        state = server.state
        assert server.per_key() == {keys[0]: 2, keys[1]: 3, keys[2]: 2, keys[3]: 1, keys[4]: 1, keys[5]: 3}
        assert max(state.successes.values()) == 1 and sum(state.successes.values()) == 4
        assert state.max_in_flight <= 3
        assert (1, 0.25) in waits  # the 429's Retry-After, honoured
        report = read_json(out / f"{NAME}_caption_generation_report.json")
        assert report["status"] == "complete_with_failures" and report["totals"]["captioned"] == 4
        reasons = {f["id"]: f["reason"] for f in report["failures"]}
        assert reasons == {
            ids[4]: "generation failed: ApiRequestFailed: HTTP 400: stand-in bad request (not retried)",
            ids[5]: "generation failed: ApiRequestFailed: HTTP 500: stand-in internal error (gave up after 3 "
                    "attempts)"}
        assert report["truncated"] == {"count": 1, "items": [
            {"id": ids[3], "path": str(folders(images)[3]), "reason": "cut off at the token limit (finish_reason: "
                                                                      "length)"}]}
        assert report["settings"]["backend"]["requests"] == {"requests": 12, "retries": 6, "succeeded": 4,
                                                             "failed": 2, "truncated": 1}
        assert [item_id(r["images"][0]) for r in read_json(out / f"image_{NAME}.json")] == ids[:4]

        state.faults.clear()
        before = len(state.requests)
        assert qwen.main([*argv, "--resume"]) == 0
        assert server.per_key()[keys[4]] == 2 and server.per_key()[keys[5]] == 4
        assert len(state.requests) == before + 2  # captioned items are never asked again
    assert [item_id(r["images"][0]) for r in read_json(out / f"image_{NAME}.json")] == ids
    assert read_json(out / f"{NAME}_caption_generation_report.json")["totals"]["already_done"] == 4


def test_concurrency_keeps_the_flag_in_flight_and_never_more(tmp_path: Path, api_key: str) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(flat / f"img{i:02d}.png")
    with Standin(delay=0.3) as server:
        assert caption.main(api_argv(server.url, "--input_dir", str(flat), "--output_dir", str(tmp_path / "out"),
                                     "--concurrency", "4", "--batch_size", "1")) == 0
    assert server.state.max_in_flight == 4
    assert sorted(server.per_key().values()) == [1] * 24
    assert len(read_json(tmp_path / "out" / f"image_{NAME}.json")) == 24
    parts = server.state.requests[0]["messages"][0]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,") and len(parts) == 2


def test_internvl_and_augment_take_the_api_backend(repo_root: Path, examples_copy: Path, tmp_path: Path,
                                                   api_key: str) -> None:
    objs = folders(examples_copy / "multiview_images")
    train = tmp_path / "train.jsonl"
    rows = [caption_sample(item_id(o.name), [str(o / "front.jpg"), str(o / "back.jpg")], "old", "Describe it.")
            .to_json() for o in objs[:3]]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with Standin() as server:
        assert internvl.main(api_argv(server.url, "--input_dir", str(examples_copy / "multiview_images"),
                                      "--output_dir", str(tmp_path / "iv"), "--views", "front,back")) == 0
        assert augment.main(api_argv(server.url, "--input", str(train), "--output", str(tmp_path / "aug.jsonl"))) \
            == 0
    assert len(read_json(tmp_path / "iv" / f"image_{NAME}.json")) == 6
    out = read_jsonl(tmp_path / "aug.jsonl")
    assert [r["original_caption"] for r in out] == ["old"] * 3
    assert [r["conversations"][1]["value"] for r in out] == [
        f"stand-in caption of 2 views, item {key_of_file(o / 'front.jpg')}, prompt of 12 characters" for o in objs[:3]]
    provenance = out[0]["provenance"]
    assert provenance["backend"] == "openai" and provenance["api_model"] == MODEL
    assert provenance["served_model_ids"] == [SERVED_MODEL] and provenance["model_path"] is None
    assert provenance["endpoint_host"].startswith("127.0.0.1:")


def test_eval_vqa_with_the_api_backend_scores_end_to_end(tmp_path: Path, api_key: str) -> None:
    annotations, images = write_textvqa(tmp_path / "textvqa")
    # humans said "adidas" 7 times and "nike" 3 times: VQA accuracy 1.0 and 0.9; anything else 0.
    answers = {key_of_file(images / f"img{i:02d}.jpg"): "adidas" if i < 6 else "nike" if i < 9 else "cat"
               for i in range(12)}
    out = tmp_path / "results"
    with Standin(answers=answers) as server:
        assert eval_vqa.main(api_argv(server.url, "--task", "textvqa", "--annotations", str(annotations),
                                      "--image_dir", str(images), "--output_dir", str(out), "--bootstrap", "0")) == 0
    results = read_json(out / "results.json")
    assert results["n"] == 12 and results["n_failed"] == 0
    assert results["accuracy"] == pytest.approx((6 * 1.0 + 3 * 0.9) / 12)
    model = results["signature"]["model"]
    assert model["backend"] == "openai" and model["api_model"] == MODEL and model["name"] == NAME
    assert model["endpoint_host"].startswith("127.0.0.1:") and model["served_model_ids"] == [SERVED_MODEL]
    assert results["signature"]["decoding"]["max_new_tokens"] == 32
    body = server.state.requests[0]
    assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "text"]
    assert KEY not in all_text(out)


def test_the_key_is_in_no_output_and_no_log_even_verbose(repo_root: Path, tmp_path: Path) -> None:
    """A subprocess with -v (debug logs of vlmkit, the openai client and its HTTP library) and a failing item."""
    images = repo_root / "examples" / "multiview_images"
    keys = [key_of_file(f / "front.jpg") for f in folders(images)]
    out = tmp_path / "out"
    env = {**os.environ, "STANDIN_KEY": KEY, "PYTHONPATH": str(REPO)}
    with Standin(faults={keys[0]: ["500", "401"]}) as server:
        done = subprocess.run([sys.executable, str(REPO / "qwen.py"), *api_argv(server.url), "--input_dir",
                               str(images), "--output_dir", str(out), "--max_retries", "1", "-v"],
                              capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "HTTP 401" in done.stderr and "DEBUG" in done.stderr
    assert KEY not in done.stdout + done.stderr + all_text(out)


def test_bad_api_settings_are_one_line_before_any_request(repo_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    images = repo_root / "examples" / "multiview_images"
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    base = ["--input_dir", str(images), "--output_dir", str(tmp_path / "out"), "--no_progress", "--backend",
            "openai"]
    cases = [
        ([], "--api_base None: need an http(s) URL"),
        (["--api_base", "ftp://x/v1", "--api_model", "m"], "need an http(s) URL"),
        (["--api_base", "http://u:p@127.0.0.1:9/v1", "--api_model", "m"], "credentials in the URL"),
        (["--api_base", "http://127.0.0.1:9/v1"], "--api_model is required"),
        (["--api_base", "http://127.0.0.1:9/v1", "--api_model", "m", "--concurrency", "0"], "--concurrency 0"),
        (["--api_base", "http://127.0.0.1:9/v1", "--api_model", "m", "--num_beams", "2"], "beam search"),
        (["--api_base", "http://127.0.0.1:9/v1", "--api_model", "m", "--adapter_path", "x"], "cannot take a local"),
    ]
    for extra, message in cases:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            qwen.main([*base, *extra])
    with pytest.raises(InputError, match="--model_path is required .* or use --backend openai"):
        caption.main(["--input_dir", str(images), "--output_dir", str(tmp_path / "out")])  # hf needs a model
    with Standin() as server:  # an explicitly named key variable that is not set: refused before any request
        with pytest.raises(InputError, match="NOT_SET_ANYWHERE: that environment variable is not set"):
            qwen.main([*base, "--api_base", server.url, "--api_model", "m", "--api_key_env", "NOT_SET_ANYWHERE"])
    assert server.state.requests == [] and not (tmp_path / "out").exists()


def test_a_server_that_is_not_there_is_a_listed_failure_per_item(repo_root: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert qwen.main(["--backend", "openai", "--api_base", f"http://127.0.0.1:{port}/v1", "--api_model", "m",
                      "--input_dir", str(repo_root / "examples" / "multiview_images"), "--output_dir", str(tmp_path),
                      "--max_retries", "0", "--no_progress"]) == 1
    report = read_json(tmp_path / "m_caption_generation_report.json")
    assert len(report["failures"]) == 6
    assert all("ApiRequestFailed: connection failed" in f["reason"] and f["reason"].endswith("(gave up after 1 "
               "attempt)") for f in report["failures"])


def test_retry_after_and_backoff() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert parse_retry_after({"retry-after": "100000"}) == 120.0 and parse_retry_after({}) is None
    assert backoff_delay(3, 1.5) == 1.5
    delays = [backoff_delay(r, None) for r in (1, 2, 3, 4, 5, 6)]
    for delay, full in zip(delays, (0.5, 1.0, 2.0, 4.0, 8.0, 8.0), strict=True):
        assert 0.75 * full <= delay <= full
