#!/usr/bin/env python3
"""What the reliability checks cost: image header checks, model-folder checks, output locks, multi-file commits.

    python bench/bench_checks.py                  # 5,000 images, 3 repeats, then the refusals
    python bench/bench_checks.py --images 1000 --repeats 1
    python bench/bench_checks.py --refusals_only  # only: how fast each command refuses a bad input

- image headers: `vlmkit.images.read_image_header` over generated 150-400 px JPEGs in a thread pool, as
  dataprocess.convert checks every image before it writes (files just written, so in the page cache);
- model folder: `vlmkit.models.check_model_files` on a folder shaped like a 3B checkpoint (config.json, an index and
  two safetensors shards whose headers list 434 tensors; the tensor data is a few bytes each, since only the
  header is read);
- lock: `OutputLock` acquire + release on one output;
- commit: `write_all_or_nothing` of four 100 kB files against four `atomic_write_text` calls (the journal's cost);
- refusals: wall-clock seconds from process start to exit 2 (one `error:` line) for input errors that need only
  files, one fresh `python` process per command as a user runs it (interpreter start and imports included). The
  target is <= 3 s each: the error comes before torch, transformers, faiss or any model is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlmkit.images import read_image_header  # noqa: E402
from vlmkit.io import atomic_write_text, write_all_or_nothing  # noqa: E402
from vlmkit.models import check_model_files  # noqa: E402
from vlmkit.outputs import OutputLock  # noqa: E402


def best_and_median(fn: Callable[[], None], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def make_images(folder: Path, n: int) -> list[str]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        w, h = (int(x) for x in rng.integers(150, 401, 2))
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=85)
        paths.append(str(path))
    return paths


def make_checkpoint(folder: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "hidden_size": 2048}))
    weight_map = {}
    for shard in (1, 2):
        name = f"model-0000{shard}-of-00002.safetensors"
        tensors = {f"model.layers.{shard * 1000 + i}.weight": np.zeros(2, np.float32) for i in range(217)}
        save_file(tensors, str(folder / name))
        weight_map.update(dict.fromkeys(tensors, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


REPO = Path(__file__).resolve().parent.parent


def refusal_cases(root: Path) -> list[tuple[str, list[str]]]:
    """(what, argv) of input errors that need only files; the inputs are built under `root`."""
    from PIL import Image

    from demo.tiny.word_clip import build_tiny_clip_words, make_shape_pairs

    clip = build_tiny_clip_words(root / "clip")
    shapes = make_shape_pairs(root / "shapes", n=8)
    (shapes / "bad.jsonl").write_text(json.dumps({"query": "a red circle", "positive": "images/nowhere.png"}) + "\n")
    config = root / "cfg.yaml"
    config.write_text(f"model_name_or_path: {clip}\ndata_path: {shapes / 'train.jsonl'}\noutput_dir: {root / 'o'}\n"
                      "eval_strategy: 'no'\n")
    index = root / "index"
    index.mkdir()
    (index / "index.json").write_text(json.dumps({"format": "vlmkit-retrieval-index/1", "model": str(clip),
                                                  "dim": 32, "count": 8, "index_bytes": 4096}))
    (index / "index.faiss").write_bytes(b"IxFI" + bytes(100))  # truncated
    (index / "ids.jsonl").write_text("")
    views = root / "views" / "0000000a-aaaa-4bbb-8ccc-dddddddddddd_1_ac001001_textured_4k.glb_shaded"
    views.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(views / "front.jpg")
    data = (views / "front.jpg").read_bytes()
    (views / "back.jpg").write_bytes(data[: len(data) // 2])  # a truncated render
    gt = root / "gt.json"
    gt.write_text(json.dumps([{"images": ["0000000a-aaaa-4bbb-8ccc-dddddddddddd_1_ac001001.jpg"],
                               "caption": "a red vase"}]))
    (root / "train.jsonl").write_text(json.dumps({"id": "a_1", "images": ["x.jpg"], "conversations": [
        {"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A vase."}]}) + "\n")
    (root / "eval_bad.jsonl").write_text("{oops\n")
    r = ["retrieval.py"]
    return [
        ("retrieval train: learning_rate=nan", [*r, "train", str(config), "--config_override", "learning_rate=nan"]),
        ("retrieval train: a missing image in the data", [*r, "train", str(config), "--config_override",
                                                          f"data_path={shapes / 'bad.jsonl'}"]),
        ("retrieval eval: --batch_size -3", [*r, "eval", "--model", str(clip), "--data", str(shapes / "val.jsonl"),
                                             "--output", str(root / "e.json"), "--batch_size", "-3"]),
        ("retrieval index: IVF99999 on 8 images", [*r, "index", "--model", str(clip), "--images",
                                                   str(shapes / "images"), "--output", str(root / "i"),
                                                   "--index_type", "IVF99999,Flat"]),
        ("retrieval search: truncated index.faiss", [*r, "search", "--index", str(index), "--query", "a circle"]),
        ("compare: truncated render (CLIP image metrics)", ["compare.py", "--generated", str(gt), "--ground_truth",
                                                            str(gt), "--images_dir", str(root / "views"),
                                                            "--clip_model", str(clip), "--metrics", "clip_image",
                                                            "--no_coco", "--output_dir", str(root / "c")]),
        ("train: malformed eval data", ["train.py", "--data", str(root / "train.jsonl"), "--eval_data",
                                        str(root / "eval_bad.jsonl"), "--output_dir", str(root / "t"),
                                        "--base_model", str(clip), "--arch", "qwen2_5_vl"]),
        ("merge_lora_weights: --atol -1", ["merge_lora_weights.py", "--adapter", str(root), "--output_dir",
                                           str(root / "m"), "--atol", "-1"]),
        ("compare_vqa: --bootstrap -1", ["compare_vqa.py", str(root), "--bootstrap", "-1"]),
        ("download_models: --timeout 0", ["download_models.py", "--model", "Qwen2.5-3B-Instruct", "--timeout", "0"]),
    ]


def time_refusals(root: Path, repeats: int) -> None:
    import subprocess

    for what, argv in refusal_cases(root):
        times, last = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            last = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=600)
            times.append(time.perf_counter() - start)
        errors = [line for line in last.stderr.splitlines() if line.startswith("error:")]
        verdict = "ok" if last.returncode == 2 and len(errors) == 1 else f"UNEXPECTED exit {last.returncode}"
        print(f"refusal {what}: {min(times):.2f} s (median {statistics.median(times):.2f} s) [{verdict}] "
              f"{(errors or [last.stderr.strip()[-200:]])[0][:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--refusals_only", action="store_true", help="only time the refusals of bad inputs")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    if args.refusals_only:
        with tempfile.TemporaryDirectory() as tmp:
            time_refusals(Path(tmp), args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "img").mkdir()
        paths = make_images(root / "img", args.images)

        def headers() -> None:
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(read_image_header, paths))

        best, median = best_and_median(headers, args.repeats)
        print(f"image headers: {args.images / best:,.0f} images/s (median {args.images / median:,.0f}), "
              f"{args.threads} threads")

        checkpoint = make_checkpoint(root / "ckpt")
        best, median = best_and_median(lambda: [check_model_files(checkpoint, "model") for _ in range(100)],
                                       args.repeats)
        print(f"model folder check: {best * 10:.2f} ms (median {median * 10:.2f} ms)")

        target = root / "out" / "result.json"
        best, median = best_and_median(lambda: [OutputLock(target).acquire().release() for _ in range(200)],
                                       args.repeats)
        print(f"lock acquire + release: {best * 5:.3f} ms (median {median * 5:.3f} ms)")

        text = "x" * 100_000
        files = {root / "out" / f"f{i}.txt": text for i in range(4)}

        def plain() -> None:
            for path, content in files.items():
                atomic_write_text(path, content)

        commit_best, commit_median = best_and_median(lambda: [write_all_or_nothing(files) for _ in range(20)],
                                                     args.repeats)
        plain_best, plain_median = best_and_median(lambda: [plain() for _ in range(20)], args.repeats)
        print(f"4 x 100 kB: journaled commit {commit_best * 50:.2f} ms (median {commit_median * 50:.2f}), "
              f"4 atomic writes {plain_best * 50:.2f} ms (median {plain_median * 50:.2f})")
        time_refusals(root / "refusals", args.repeats)


if __name__ == "__main__":
    main()
