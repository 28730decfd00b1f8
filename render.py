#!/usr/bin/env python3
r"""Render 3-D models (GLB/glTF, also OBJ/PLY/STL) into six shaded views, the multi-view input of the captioners.

    python render.py --input ./data/glb --output_dir ./data/multiview_images
    python render.py --input vase.glb --output_dir out --size 256 --views front,top --num_workers 2
    python render.py --input ./scans --output_dir out --up +z --front=-y      # Z-up exports

Each X.glb becomes <output_dir>/X.glb_shaded/{front,back,left,right,top,bottom}.jpg (VaseVQA-3D's layout), plus
render_report.json (per model: views, seconds, mesh statistics, failures with reasons) and views.json (the camera
convention). Axes are glTF's (+Y up, +Z front): front=+Z, back=-Z, left=-X, right=+X, top=+Y, bottom=-Y; the model is
centred and scaled to its bounding sphere, and every view has the same camera distance and field of view; a key
light follows the camera, plus ambient light. Headless on CPU with OSMesa (apt-get install libosmesa6), or --gl egl.
A file that is not a renderable mesh is a failure of that model (exit 1), not of the run.
"""

from __future__ import annotations

from vlmkit.cli import run_main, setup_logging
from vlmkit.options import parse_options
from vlmkit.render.settings import EXCLUDED, RenderCommandOptions, run


def main(argv: list[str] | None = None) -> int:
    options = parse_options(RenderCommandOptions, argv, description=__doc__, exclude=EXCLUDED)
    setup_logging(options.io.verbose)
    return run(options)


if __name__ == "__main__":
    run_main(main)
