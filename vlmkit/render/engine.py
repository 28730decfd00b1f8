"""The rasteriser: pyrender over OSMesa (CPU) or EGL (GPU), one off-screen context per process.

Why pyrender: it draws glTF's metallic-roughness materials, base-colour textures and vertex colours straight from
trimesh meshes, and renders a 512-px view in about 0.1 s on one CPU core through Mesa's llvmpipe (OSMesa), headless,
from pip wheels plus one system library (libosmesa6). Blender's `bpy` (374 MB wheel, Cycles) takes ~5 s a view on
CPU; open3d's off-screen renderer needs EGL/Vulkan from the system. We install the `arcade-pyrender` release of
pyrender (the same `pyrender` package with NumPy 2 fixes; upstream 0.1.45 still uses `np.infty`, removed in NumPy 2,
and pins PyOpenGL 3.1.0, whose OSMesa binding fails on Python 3.11; PyOpenGL 3.1.10 works).

PyOpenGL picks its platform when first imported, from PYOPENGL_PLATFORM; `configure_platform` sets it before that.
"""

from __future__ import annotations

import ctypes.util
import math
import os
import sys

import numpy as np

from vlmkit.io import InputError
from vlmkit.render.mesh import LoadedAsset
from vlmkit.render.views import CameraSettings, camera_distance, camera_pose

PLATFORMS = {"osmesa": ("OSMesa", "libosmesa6"), "egl": ("EGL", "libegl1")}
# The key light's direction in the camera frame: from the upper left, slightly behind the camera.
_KEY_FROM = np.array([-0.45, 0.55, 1.0]) / np.linalg.norm([-0.45, 0.55, 1.0])


def platform_problem(platform: str) -> str | None:
    """Why `platform` cannot be used here (its system library is missing), or None."""
    library, package = PLATFORMS[platform]
    if ctypes.util.find_library(library) is None:
        return f"lib{library} not found (install the system package {package}, e.g. `apt-get install -y {package}`)"
    return None


def configure_platform(platform: str | None = None) -> str:
    """Choose the OpenGL platform (default: $PYOPENGL_PLATFORM, else osmesa) before PyOpenGL is imported."""
    chosen = (platform or os.environ.get("PYOPENGL_PLATFORM") or "osmesa").lower()
    if chosen not in PLATFORMS:
        raise InputError(f"--gl {chosen}: choose one of {', '.join(PLATFORMS)}")
    if "OpenGL" in sys.modules and os.environ.get("PYOPENGL_PLATFORM", "").lower() != chosen:
        raise InputError(f"--gl {chosen}: PyOpenGL was already imported for another platform; "
                         f"set PYOPENGL_PLATFORM={chosen} before starting")
    problem = platform_problem(chosen)
    if problem:
        raise InputError(f"--gl {chosen}: {problem}")
    os.environ["PYOPENGL_PLATFORM"] = chosen
    return chosen


def _key_light_offset() -> np.ndarray:
    z = _KEY_FROM
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    offset = np.eye(4)
    offset[:3, 0], offset[:3, 1], offset[:3, 2] = x, np.cross(z, x), z
    return offset


class ViewRenderer:
    """Renders the views of framed assets (`vlmkit.render.mesh.load_asset`) with one reusable GL context."""

    def __init__(self, settings: CameraSettings, smooth: bool = True):
        import pyrender

        self._pyrender = pyrender
        self.settings = settings
        self.smooth = smooth
        self.distance = camera_distance(settings.yfov)
        self._renderer = pyrender.OffscreenRenderer(settings.size, settings.size)

    def render(self, asset: LoadedAsset, views: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
        """RGB uint8 images, one per view, of the asset in the normalised frame."""
        pr = self._pyrender
        s = self.settings
        scene = pr.Scene(bg_color=[c / 255 for c in s.background] + [1.0], ambient_light=[s.ambient] * 3)
        for mesh, pose in asset.meshes:
            # Face colours cannot be interpolated, so those meshes are drawn flat whatever --shading says.
            smooth = self.smooth and getattr(mesh.visual, "kind", None) != "face"
            scene.add(pr.Mesh.from_trimesh(mesh, smooth=smooth), pose=pose)
        camera = scene.add(pr.PerspectiveCamera(yfov=math.radians(s.yfov), aspectRatio=1.0,
                                                znear=max(self.distance - 1.5, 0.05), zfar=self.distance + 1.5))
        key = scene.add(pr.DirectionalLight(color=np.ones(3), intensity=s.key_light))
        offset = _key_light_offset()
        images: dict[str, np.ndarray] = {}
        for view in views:
            pose = camera_pose(view, self.distance)
            scene.set_pose(camera, pose)
            scene.set_pose(key, pose @ offset)
            color, _depth = self._renderer.render(scene)
            images[view] = np.ascontiguousarray(color[:, :, :3])
        return images

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None
