"""Benchmark: render.py's seconds per view and per object at 512 px on a 50k-face textured vase.

    python bench/bench_render.py                          # 50k faces, 2048-px texture, 512-px views
    python bench/bench_render.py --size 1024 --workers 1,2 --objects 8

Three figures, each the best of --repeats (other jobs on a shared machine only ever slow a run down):
- view: one `ViewRenderer.render` of one view of an already loaded model (the rasteriser alone);
- object: `render_model` end to end for one model — load the GLB with trimesh, build the scene, render six views,
  encode six JPEGs, publish the folder — in this process, with the GL context warm;
- run: `python render.py` on --objects copies of the model with each --workers count, wall clock including the
  worker processes' start-up (what a user waits for).
Results: stdout and bench/out/render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from demo.procedural import Decoration, write_vase_glb  # noqa: E402
from vlmkit.ids import VIEWS  # noqa: E402
from vlmkit.render.engine import configure_platform  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--segments", type=int, default=250, help="around the axis (250 x 100 rows = 50k faces)")
    parser.add_argument("--rows", type=int, default=101)
    parser.add_argument("--texture", type=int, default=2048, help="texture width and height in pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--objects", type=int, default=6, help="models in the render.py runs")
    parser.add_argument("--workers", default="1,2", help="--num_workers values for the render.py runs")
    parser.add_argument("--output", default=str(REPO / "bench" / "out" / "render.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    configure_platform()
    from vlmkit.render.batch import RenderOptions, close_renderer, render_model
    from vlmkit.render.engine import ViewRenderer
    from vlmkit.render.mesh import load_asset
    from vlmkit.render.views import CameraSettings, axis_rotation

    tmp = Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        glb = write_vase_glb(tmp / "in" / "vase_1.glb", "amphora", Decoration("red-figure"), segments=args.segments,
                             rows=args.rows, texture_width=args.texture, texture_height=args.texture)
        asset = load_asset(glb, axis_rotation())
        faces = asset.stats["faces"]
        camera = CameraSettings(size=args.size)
        renderer = ViewRenderer(camera)
        renderer.render(asset, ["front"])  # compile shaders, upload the mesh and texture
        view_times = []
        for _ in range(args.repeats):
            for view in VIEWS:
                t = time.perf_counter()
                renderer.render(asset, [view])
                view_times.append(time.perf_counter() - t)
        renderer.close()

        options = RenderOptions(camera=camera, views=tuple(VIEWS))
        out = tmp / "out"
        out.mkdir()
        render_model(glb, out, options)  # warm the worker-side renderer
        object_runs = []
        for _ in range(args.repeats):
            entry = render_model(glb, out, options)
            object_runs.append(entry)
        close_renderer()
        best = min(object_runs, key=lambda e: e["seconds"])

        runs = []
        for n in range(args.objects):
            shutil.copy(glb, tmp / "in" / f"vase_{n + 2}.glb")
        for workers in [int(w) for w in args.workers.split(",")]:
            target = tmp / f"run{workers}"
            t = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "render.py"), "--input", str(tmp / "in"), "--output_dir",
                            str(target), "--size", str(args.size), "--num_workers", str(workers), "--no_progress"],
                           check=True, capture_output=True)
            seconds = time.perf_counter() - t
            n_models = args.objects + 1
            runs.append({"num_workers": workers, "models": n_models, "seconds": round(seconds, 2),
                         "seconds_per_object": round(seconds / n_models, 3),
                         "objects_per_minute": round(60 * n_models / seconds, 1)})
        result = {
            "model": {"faces": faces, "vertices": asset.stats["vertices"], "texture": [args.texture, args.texture],
                      "glb_bytes": glb.stat().st_size},
            "size": args.size,
            "seconds_per_view": {"best": round(min(view_times), 4),
                                 "median": round(sorted(view_times)[len(view_times) // 2], 4)},
            "seconds_per_object": {"best": best["seconds"], "load": best["seconds_load"],
                                   "render_6_views": best["seconds_render"], "write_6_jpegs": best["seconds_write"]},
            "render_py_runs": runs,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "load_average": [round(x, 2) for x in os.getloadavg()]},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
