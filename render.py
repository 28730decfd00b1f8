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

import argparse
from pathlib import Path

from PIL import ImageColor

from vlmkit.cli import HelpFormatter, add_views_arg, run_main, setup_logging
from vlmkit.executor import add_executor_args, executor_options
from vlmkit.images import add_max_image_pixels_arg, apply_max_image_pixels, max_image_pixels
from vlmkit.io import InputError
from vlmkit.render.views import AXES, CameraSettings, axis_rotation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", required=True, help="a model file, or a folder searched recursively for model files")
    io.add_argument("--output_dir", default="./data/multiview_images", help="where the <name>_shaded folders go")
    add_views_arg(io, "views to render (comma-separated)")
    io.add_argument("--resume", action="store_true", help="skip models whose views exist; render the rest")
    io.add_argument("--overwrite", action="store_true", help="render every model again, replacing its views")
    io.add_argument("--num_workers", type=int, default=1, help="models rendered in parallel (one process each)")
    io.add_argument("--no_progress", action="store_true", help="no progress bar")
    io.add_argument("-v", "--verbose", action="store_true")
    add_max_image_pixels_arg(io)

    look = parser.add_argument_group("camera, lighting and images")
    look.add_argument("--size", type=int, default=512, help="width and height of each view in pixels")
    look.add_argument("--background", default="white", help="a colour name or #rrggbb")
    look.add_argument("--quality", type=int, default=90, help="JPEG quality (1-95)")
    look.add_argument("--yfov", type=float, default=40.0, help="field of view in degrees (the same for every view)")
    look.add_argument("--up", default="+y", choices=sorted(AXES), help="the asset's up axis")
    look.add_argument("--front", default="+z", choices=sorted(AXES),
                      help="the axis the asset's front faces (a minus sign needs =, as in --front=-y)")
    look.add_argument("--ambient", type=float, default=0.35, help="ambient light (0-1)")
    look.add_argument("--key_light", type=float, default=3.0, help="intensity of the key light that follows the camera")
    look.add_argument("--shading", default="smooth", choices=("smooth", "flat"),
                      help="smooth: interpolated vertex normals; flat: one normal per face")
    look.add_argument("--gl", default=None, choices=("osmesa", "egl"),
                      help="OpenGL platform (default: $PYOPENGL_PLATFORM, else osmesa: CPU, no display)")
    add_executor_args(parser)
    return parser


def camera_settings(args: argparse.Namespace) -> CameraSettings:
    if not 16 <= args.size <= 8192:
        raise InputError(f"--size {args.size}: choose 16 to 8192 pixels")
    if not 1 <= args.quality <= 95:
        raise InputError(f"--quality {args.quality}: choose 1 to 95")
    if not 1 <= args.yfov <= 120:
        raise InputError(f"--yfov {args.yfov}: choose 1 to 120 degrees")
    if args.ambient < 0 or args.key_light < 0:
        raise InputError("--ambient and --key_light must be >= 0")
    try:
        background = ImageColor.getrgb(args.background)[:3]
    except ValueError:
        raise InputError(f"--background {args.background}: not a colour (a name such as white, or #rrggbb)") from None
    axis_rotation(args.up, args.front)  # up and front must be perpendicular
    return CameraSettings(size=args.size, yfov=args.yfov, up=args.up, front=args.front, background=background,
                          ambient=args.ambient, key_light=args.key_light)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from vlmkit.render.engine import configure_platform
    from vlmkit.render.run import RenderOptions, discover_models, run_render

    camera = camera_settings(args)
    if args.num_workers < 1:
        raise InputError(f"--num_workers {args.num_workers}: must be at least 1")
    if args.resume and args.overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    apply_max_image_pixels(args)
    models = discover_models(args.input)
    platform = configure_platform(args.gl)
    options = RenderOptions(camera=camera, views=args.views, quality=args.quality, smooth=args.shading == "smooth",
                            platform=platform, max_image_pixels=max_image_pixels())
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())}
    return run_render(models, Path(args.output_dir), options, num_workers=args.num_workers, resume=args.resume,
                      overwrite=args.overwrite, settings=settings, progress=not args.no_progress,
                      executor=executor_options(args))


if __name__ == "__main__":
    run_main(main)
