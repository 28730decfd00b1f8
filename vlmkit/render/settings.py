"""render.py's options (one field per flag, each range declared in its field) and `run(options)`: the camera from
the flags, every setting checked before a model is opened, then the batch (vlmkit/render/batch.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from vlmkit.executor import ExecutorOptions
from vlmkit.ids import VIEWS, parse_views
from vlmkit.images import max_image_pixels_option, set_max_image_pixels
from vlmkit.io import InputError
from vlmkit.options import Options, as_settings, opt
from vlmkit.ranges import POSITIVE, Range
from vlmkit.render.views import AXES, CameraSettings, axis_rotation


@dataclass
class InputOutputOptions(Options):
    TITLE: ClassVar[str | None] = "input and output"
    input: str = opt(None, "a model file, or a folder searched recursively for model files", required=True)
    output_dir: str = opt("./data/multiview_images", "where the <name>_shaded folders go")
    views: tuple[str, ...] = opt(VIEWS, f"views to render (comma-separated) (default: {','.join(VIEWS)})",
                                 parse=parse_views)
    resume: bool = opt(False, "skip models whose views exist; render the rest")
    overwrite: bool = opt(False, "render every model again, replacing its views")
    num_workers: int = opt(1, "models rendered in parallel (one process each)", range=POSITIVE)
    no_progress: bool = opt(False, "no progress bar")
    verbose: bool = opt(False, flags=("-v",))
    max_image_pixels: int = max_image_pixels_option()

    def check(self) -> None:
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other")


@dataclass
class LookOptions(Options):
    TITLE: ClassVar[str | None] = "camera, lighting and images"
    size: int = opt(512, "width and height of each view in pixels", range=Range(16, 8192))
    background: str = opt("white", "a colour name or #rrggbb")
    quality: int = opt(90, "JPEG quality", range=Range(1, 95))
    yfov: float = opt(40.0, "field of view in degrees (the same for every view)", range=Range(1, 120))
    up: str = opt("+y", "the asset's up axis", choices=sorted(AXES))
    front: str = opt("+z", "the axis the asset's front faces (a minus sign needs =, as in --front=-y)",
                     choices=sorted(AXES))
    ambient: float = opt(0.35, "ambient light (0-1)", range=Range(0))
    key_light: float = opt(3.0, "intensity of the key light that follows the camera", range=Range(0))
    shading: str = opt("smooth", "smooth: interpolated vertex normals; flat: one normal per face",
                       choices=("smooth", "flat"))
    gl: str | None = opt(None, "OpenGL platform (default: $PYOPENGL_PLATFORM, else osmesa: CPU, no display)",
                         choices=("osmesa", "egl"))

    def camera(self) -> CameraSettings:
        """The camera these flags describe; a colour that is not one, or axes that are not perpendicular, are
        input errors."""
        from PIL import ImageColor

        try:
            background = ImageColor.getrgb(self.background)[:3]
        except ValueError:
            raise InputError(f"--background {self.background}: not a colour (a name such as white, or "
                             "#rrggbb)") from None
        axis_rotation(self.up, self.front)  # up and front must be perpendicular
        return CameraSettings(size=self.size, yfov=self.yfov, up=self.up, front=self.front, background=background,
                              ambient=self.ambient, key_light=self.key_light)


@dataclass
class RenderCommandOptions(Options):
    """Everything render.py is told: input and output, the look of the views, where the work runs (its
    --num_workers is also the number of Ray tasks at once)."""

    io: InputOutputOptions = field(default_factory=InputOutputOptions)
    look: LookOptions = field(default_factory=LookOptions)
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)


EXCLUDED = ("gpus_per_worker",)  # no model stages: a render task needs no GPU share


def run(options: RenderCommandOptions) -> int:
    """Check the settings and the input, then render every model (exit status: see vlmkit/render/batch.py)."""
    from vlmkit.images import max_image_pixels
    from vlmkit.render.batch import RenderOptions, discover_models, run_render
    from vlmkit.render.engine import configure_platform

    io, look = options.io, options.look
    camera = look.camera()
    set_max_image_pixels(io.max_image_pixels)
    models = discover_models(io.input)
    platform = configure_platform(look.gl)
    render = RenderOptions(camera=camera, views=io.views, quality=look.quality, smooth=look.shading == "smooth",
                           platform=platform, max_image_pixels=max_image_pixels())
    settings = {k: v for k, v in as_settings(options).items() if k not in EXCLUDED}
    return run_render(models, Path(io.output_dir), render, num_workers=io.num_workers, resume=io.resume,
                      overwrite=io.overwrite, settings=settings, progress=not io.no_progress,
                      executor=options.executor)
