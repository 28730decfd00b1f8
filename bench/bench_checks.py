#!/usr/bin/env python3
"""What the reliability checks cost: image header checks, model-folder checks, output locks, multi-file commits.

    python bench/bench_checks.py                  # 5,000 images, 3 repeats
    python bench/bench_checks.py --images 1000 --repeats 1

- image headers: `vlmkit.images.read_image_header` over generated 150-400 px JPEGs in a thread pool, as
  dataprocess.convert checks every image before it writes (files just written, so in the page cache);
- model folder: `vlmkit.models.check_model_files` on a folder shaped like a 3B checkpoint (config.json, an index and
  two safetensors shards whose headers list 434 tensors; the tensor data is a few bytes each, since only the
  header is read);
- lock: `OutputLock` acquire + release on one output;
- commit: `write_all_or_nothing` of four 100 kB files against four `atomic_write_text` calls (the journal's cost).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
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


if __name__ == "__main__":
    main()
