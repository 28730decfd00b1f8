"""Loading a 3-D asset with trimesh, checking it is a renderable triangle mesh, and framing it.

`load_asset` returns the asset's triangle meshes with their scene-graph transforms composed with the axis rotation
and the framing of `vlmkit.render.views` (bounding-box centre at the origin, bounding sphere of radius 1). Anything
that cannot be rendered — an empty file, a file trimesh cannot parse, a scene without triangles (a point cloud, curves),
non-finite or degenerate geometry — raises `MeshProblem` with a one-line reason, which the caller records as a failure
of that model (never a crash of the run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MESH_EXTENSIONS: tuple[str, ...] = (".glb", ".gltf", ".obj", ".ply", ".stl")


class MeshProblem(Exception):
    """A model file that cannot be rendered; the message is the reason."""


@dataclass
class LoadedAsset:
    """Triangle meshes placed in the normalised frame, and what the report says about them."""

    meshes: list[tuple[Any, np.ndarray]]  # (trimesh.Trimesh, 4x4 pose in the normalised frame)
    stats: dict[str, Any] = field(default_factory=dict)


def _visual_kind(mesh: Any) -> str:
    visual = mesh.visual
    if getattr(visual, "kind", None) == "texture":
        material = getattr(visual, "material", None)
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        return "texture" if image is not None and visual.uv is not None and len(visual.uv) else "material"
    if getattr(visual, "kind", None) in ("vertex", "face"):
        return f"{visual.kind}_colors"
    return "none"


def _gltf_images(path: Path) -> list[tuple[str, bytes | Path]]:
    """(label, bytes or file) of every image a .glb / .gltf embeds or references (data URIs are left to trimesh)."""
    import json
    import struct

    with path.open("rb") as handle:
        head = handle.read(12)
        if path.suffix.lower() == ".glb":
            if len(head) < 12 or head[:4] != b"glTF":
                return []
            chunks, data = [], handle.read()
            offset = 0
            while offset + 8 <= len(data):
                length, kind = struct.unpack_from("<II", data, offset)
                chunks.append((kind, data[offset + 8:offset + 8 + length]))
                offset += 8 + length
            doc = json.loads(chunks[0][1]) if chunks and chunks[0][0] == 0x4E4F534A else {}
            binary = next((c for k, c in chunks if k == 0x004E4942), b"")
        else:
            doc, binary = json.loads(head + handle.read()), b""
    out: list[tuple[str, bytes | Path]] = []
    views = doc.get("bufferViews") or []
    for i, image in enumerate(doc.get("images") or []):
        label = f"texture image {i}{' (' + str(image.get('name'))[:60] + ')' if image.get('name') else ''}"
        if "bufferView" in image and binary:
            view = views[image["bufferView"]]
            start = view.get("byteOffset", 0)
            out.append((label, binary[start:start + view["byteLength"]]))
        elif isinstance(image.get("uri"), str) and not image["uri"].startswith("data:"):
            out.append((label, path.parent / image["uri"]))
    return out


def texture_problem(path: Path) -> str | None:
    """A texture that the image policy refuses (too many pixels, not an image, missing): trimesh would drop it with
    a debug log and the model would render untextured with exit 0. Headers only; None when all are usable."""
    import io

    from vlmkit.images import read_image_header

    try:
        images = _gltf_images(path)
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None  # not parseable here: trimesh's own load reports the file
    for label, source in images:
        problem = read_image_header(io.BytesIO(source) if isinstance(source, bytes) else source)
        if not hasattr(problem, "width"):
            return f"{label}: {problem.reason}; raise --max_image_pixels if the file is trusted" \
                if problem.kind == "too large" else f"{label}: {problem.reason}"
    return None


def load_asset(path: str | os.PathLike, rotation: np.ndarray) -> LoadedAsset:
    """Load `path`, rotate it by `rotation` (see `views.axis_rotation`) and frame it; raise `MeshProblem`."""
    import trimesh

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MeshProblem(f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise MeshProblem("empty file (0 bytes)")
    if path.suffix.lower() in (".glb", ".gltf"):
        problem = texture_problem(path)
        if problem:
            raise MeshProblem(problem)
    try:
        scene = trimesh.load_scene(str(path))
    except Exception as exc:  # trimesh raises many types (ValueError, KeyError, struct.error, ...) on bad files
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise MeshProblem(f"cannot load as a 3-D model ({type(exc).__name__}{': ' + message if message else ''})") \
            from None

    meshes: list[tuple[Any, np.ndarray]] = []
    skipped: dict[str, int] = {}
    kinds: set[str] = set()
    for node in scene.graph.nodes_geometry:
        transform, geometry_name = scene.graph[node]
        geometry = scene.geometry.get(geometry_name)
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            kind = type(geometry).__name__
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        meshes.append((geometry, rotation @ np.asarray(transform, dtype=float)))
        kinds.add(_visual_kind(geometry))
    if not meshes:
        found = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())) or "nothing"
        raise MeshProblem(f"no triangle mesh in the file (found {found}): not a renderable model")

    points = np.concatenate([trimesh.transform_points(m.vertices, pose) for m, pose in meshes])
    if not np.isfinite(points).all():
        raise MeshProblem("non-finite vertex coordinates (NaN or infinity)")
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    if not radius > 0:
        raise MeshProblem("degenerate model: all vertices at one point")
    framing = np.diag([1 / radius] * 3 + [1.0])
    framing[:3, 3] = -centre / radius
    placed = [(m, framing @ pose) for m, pose in meshes]
    stats = {
        "meshes": len(placed),
        "vertices": int(sum(len(m.vertices) for m, _ in placed)),
        "faces": int(sum(len(m.faces) for m, _ in placed)),
        "appearance": sorted(kinds),
        "extent": [round(float(v), 6) for v in hi - lo],  # in the asset's units, after the axis rotation
        "bounding_radius": round(radius, 6),
    }
    if skipped:
        stats["skipped_geometry"] = skipped
    return LoadedAsset(placed, stats)
