"""The camera convention of render.py: which way each of the six views looks, and how the model is framed.

Axes are glTF's: +Y up, +Z the front of the object. Each view's camera sits on one axis and looks at the origin:

| view | camera on | image up | image right |
| --- | --- | --- | --- |
| front | +Z | +Y | +X |
| back | -Z | +Y | -X |
| left | -X | +Y | +Z |
| right | +X | +Y | -Z |
| top | +Y | -Z | +X |
| bottom | -Y | +Z | +X |

left/right are the viewer's left and right when facing the front view (glTF calls +X the asset's own left). Top and
bottom follow third-angle projection: in the top view the front edge is at the bottom of the image, in the bottom view
at the top, as if the object were tipped towards or away from the viewer of the front view.

Framing: the model is centred on the centre of its axis-aligned bounding box and scaled so that its bounding sphere
about that centre has radius 1; every view uses the same perspective camera (vertical field of view `yfov`) at the
same distance, just far enough for the unit sphere to fit with a small margin. Sizes are therefore comparable between
views of one object, not between objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vlmkit.ids import VIEWS
from vlmkit.io import InputError

# view -> (direction from the object to the camera, image up)
VIEW_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "front": ((0, 0, 1), (0, 1, 0)),
    "back": ((0, 0, -1), (0, 1, 0)),
    "left": ((-1, 0, 0), (0, 1, 0)),
    "right": ((1, 0, 0), (0, 1, 0)),
    "top": ((0, 1, 0), (0, 0, -1)),
    "bottom": ((0, -1, 0), (0, 0, 1)),
}
assert tuple(VIEW_AXES) == VIEWS

AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}
FRAME_MARGIN = 1.05  # the unit sphere fills 1/1.05 of the smaller half-angle of the view


def parse_axis(text: str, flag: str) -> np.ndarray:
    key = text.strip().lower()
    if key in ("x", "y", "z"):
        key = "+" + key
    if key not in AXES:
        raise InputError(f"{flag} {text}: choose one of {', '.join(AXES)}")
    return np.array(AXES[key], dtype=float)


def axis_rotation(up: str = "+y", front: str = "+z") -> np.ndarray:
    """4x4 rotation taking an asset whose up is `up` and front is `front` into the glTF convention (+Y up, +Z front).

    Z-up exports (many OBJ/PLY/STL files, Blender scenes saved without glTF's conversion) are `--up +z --front=-y`.
    """
    u, f = parse_axis(up, "--up"), parse_axis(front, "--front")
    if abs(float(u @ f)) > 0.5:
        raise InputError(f"--up {up} / --front {front}: the up and front axes must be perpendicular")
    rotation = np.eye(4)
    rotation[:3, :3] = np.stack([np.cross(u, f), u, f])  # rows: what becomes +X, +Y, +Z
    return rotation


def camera_distance(yfov_degrees: float) -> float:
    """Distance at which a unit sphere fits the view (square images: the same fov both ways)."""
    return FRAME_MARGIN / math.sin(math.radians(yfov_degrees) / 2)


def camera_pose(view: str, distance: float) -> np.ndarray:
    """The camera-to-world matrix of a view (OpenGL camera: looks along its -Z, +Y up)."""
    direction, up = (np.array(v, dtype=float) for v in VIEW_AXES[view])
    z = direction
    x = np.cross(up, z)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, direction * distance
    return pose


@dataclass(frozen=True)
class CameraSettings:
    """Everything that decides what a view looks like; written to views.json and compared on --resume."""

    size: int = 512
    yfov: float = 40.0
    up: str = "+y"
    front: str = "+z"
    background: tuple[int, int, int] = (255, 255, 255)
    ambient: float = 0.35
    key_light: float = 3.0

    def describe(self, views: tuple[str, ...]) -> dict:
        distance = camera_distance(self.yfov)
        per_view = {}
        for view in views:
            pose = camera_pose(view, distance)
            per_view[view] = {"camera_position": [round(float(v), 6) for v in pose[:3, 3]],
                              "look_at": [0.0, 0.0, 0.0],
                              "image_up": [float(v) for v in VIEW_AXES[view][1]],
                              "image_right": [round(float(v), 6) for v in pose[:3, 0]]}
        return {
            "axes": "glTF: +Y up, +Z front; left/right are the viewer's, facing the front view",
            "asset_up": self.up, "asset_front": self.front,
            "framing": "centre of the bounding box at the origin, bounding sphere scaled to radius 1",
            "projection": "perspective", "yfov_degrees": self.yfov, "camera_distance": round(distance, 6),
            "image_size": [self.size, self.size], "background_rgb": list(self.background),
            "lighting": {"ambient": self.ambient, "key_light": self.key_light,
                         "key_light_direction": "fixed in the camera frame, from the upper left (follows the camera)"},
            "views": per_view,
        }
