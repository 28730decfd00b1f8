"""Procedural Greek vases as textured GLB models: the bundled examples, the render tests and the benchmark.

A vessel is a surface of revolution of one closed profile — from the centre of the base, out along the foot, up the
outer wall, over the lip and down the inner wall to the centre of the inner floor — so that the top view looks into
an open mouth. Handles are tubes swept along Bezier curves, coloured black glaze with vertex colours (so an example
exercises both textures and vertex colours). The texture is painted in (angle, profile position) coordinates: bands
of glaze and clay, tongues, rays, a meander, and friezes of silhouette figures — black on clay (black-figure) or clay
reserved on black (red-figure). Side A of a frieze faces the front (+Z), side B the back.

The mesh is built here rather than with `trimesh.creation.revolve` because a texture needs a seam: revolve shares the
seam's vertices, so they cannot carry both u = 0 and u = 1. Normals come from the parametric surface (central
differences around the circle and along the profile), so the seam does not show in the shading either.

    python -m demo.procedural OUT_DIR [--shapes amphora,kylix] [--segments 96]
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLAY = (196, 106, 52)
GLAZE = (24, 19, 17)
CLAY_F = np.array(CLAY, dtype=np.uint8)
GLAZE_F = np.array(GLAZE, dtype=np.uint8)


@dataclass(frozen=True)
class Handle:
    """A tube along a cubic Bezier; control points are (tangential, radial, height) about the direction `angle`
    (degrees from +Z towards +X: 0 front, 90 right, 180 back, 270 left)."""

    angle: float
    control: tuple[tuple[float, float, float], ...]
    radius: float = 0.018


@dataclass(frozen=True)
class Shape:
    """A vessel: its profile as (radius, height) points from the base centre to the inner floor centre."""

    outer: tuple[tuple[float, float], ...]
    inner: tuple[tuple[float, float], ...]
    handles: tuple[Handle, ...] = ()
    trefoil: float = 0.0  # oinochoe: lobes of the mouth (relative radius change at the lip)
    # Bands of the outer wall, bottom to top: (from height, to height, pattern)
    bands: tuple[tuple[float, float, str], ...] = ()
    tondo: float = 0.0  # kylix: radius of the painted disc on the inner floor


def _vertical(angle: float, low: tuple[float, float], high: tuple[float, float], reach: float) -> Handle:
    (r0, y0), (r1, y1) = low, high
    return Handle(angle, ((0, r0, y0), (0, r0 + reach, y0 + 0.07), (0, r1 + reach, y1 + 0.06), (0, r1, y1)))


def _horizontal(angle: float, r: float, y: float, width: float, reach: float, lift: float = 0.02) -> Handle:
    return Handle(angle, ((-width, r, y), (-width * 0.9, r + reach, y + lift), (width * 0.9, r + reach, y + lift),
                          (width, r, y)))


SHAPES: dict[str, Shape] = {
    "lekythos": Shape(
        outer=((0, 0), (0.10, 0), (0.105, 0.02), (0.085, 0.05), (0.12, 0.09), (0.14, 0.2), (0.15, 0.5),
               (0.145, 0.6), (0.10, 0.655), (0.045, 0.69), (0.038, 0.8), (0.06, 0.86), (0.068, 0.95), (0.07, 0.99)),
        inner=((0.056, 0.99), (0.05, 0.9), (0.028, 0.82), (0, 0.8)),
        handles=(_vertical(180, (0.125, 0.63), (0.04, 0.79), 0.06),),
        bands=((0, 0.1, "glaze"), (0.1, 0.2, "rays"), (0.2, 0.22, "glaze"), (0.22, 0.5, "frieze"),
               (0.5, 0.515, "glaze"), (0.515, 0.57, "meander"), (0.57, 0.6, "glaze"), (0.6, 0.69, "tongues"),
               (0.69, 1.0, "glaze")),
    ),
    "amphora": Shape(
        outer=((0, 0), (0.13, 0), (0.13, 0.03), (0.09, 0.06), (0.10, 0.10), (0.20, 0.22), (0.29, 0.4),
               (0.305, 0.5), (0.28, 0.61), (0.19, 0.71), (0.12, 0.755), (0.108, 0.87), (0.14, 0.95), (0.15, 0.99)),
        inner=((0.13, 0.99), (0.095, 0.9), (0.095, 0.78), (0, 0.74)),
        handles=(_vertical(90, (0.245, 0.65), (0.11, 0.87), 0.08), _vertical(270, (0.245, 0.65), (0.11, 0.87), 0.08)),
        bands=((0, 0.1, "glaze"), (0.1, 0.2, "glaze"), (0.2, 0.245, "meander"), (0.245, 0.26, "glaze"),
               (0.26, 0.6, "frieze"), (0.6, 0.7, "tongues"), (0.7, 0.76, "glaze"), (0.76, 0.79, "clay"),
               (0.79, 1.0, "glaze")),
    ),
    "hydria": Shape(
        outer=((0, 0), (0.12, 0), (0.12, 0.03), (0.09, 0.06), (0.11, 0.1), (0.22, 0.25), (0.30, 0.43),
               (0.315, 0.52), (0.29, 0.6), (0.20, 0.69), (0.11, 0.74), (0.095, 0.83), (0.13, 0.895), (0.14, 0.92)),
        inner=((0.12, 0.915), (0.085, 0.84), (0.088, 0.76), (0, 0.72)),
        handles=(_horizontal(90, 0.30, 0.47, 0.09, 0.09), _horizontal(270, 0.30, 0.47, 0.09, 0.09),
                 _vertical(180, (0.255, 0.64), (0.125, 0.88), 0.1)),
        bands=((0, 0.12, "glaze"), (0.12, 0.24, "rays"), (0.24, 0.26, "glaze"), (0.26, 0.5, "frieze"),
               (0.5, 0.52, "glaze"), (0.52, 0.6, "meander"), (0.6, 0.7, "tongues"), (0.7, 1.0, "glaze")),
    ),
    "krater": Shape(
        outer=((0, 0), (0.16, 0), (0.16, 0.03), (0.10, 0.07), (0.07, 0.12), (0.12, 0.18), (0.20, 0.25),
               (0.26, 0.33), (0.30, 0.55), (0.34, 0.75), (0.36, 0.8)),
        inner=((0.34, 0.795), (0.29, 0.6), (0.22, 0.37), (0.1, 0.28), (0, 0.26)),
        handles=(_horizontal(90, 0.245, 0.31, 0.08, 0.1, 0.08), _horizontal(270, 0.245, 0.31, 0.08, 0.1, 0.08)),
        bands=((0, 0.2, "glaze"), (0.2, 0.33, "tongues"), (0.33, 0.36, "glaze"), (0.36, 0.68, "frieze"),
               (0.68, 0.74, "meander"), (0.74, 1.0, "glaze")),
    ),
    "kylix": Shape(
        outer=((0, 0), (0.12, 0), (0.12, 0.015), (0.05, 0.04), (0.034, 0.08), (0.036, 0.13), (0.08, 0.155),
               (0.18, 0.18), (0.28, 0.225), (0.36, 0.285), (0.39, 0.33)),
        inner=((0.375, 0.332), (0.33, 0.28), (0.22, 0.215), (0.10, 0.188), (0, 0.182)),
        handles=(_horizontal(90, 0.30, 0.235, 0.07, 0.1, 0.03), _horizontal(270, 0.30, 0.235, 0.07, 0.1, 0.03)),
        bands=((0, 0.17, "glaze"), (0.17, 0.2, "clay"), (0.2, 0.31, "frieze"), (0.31, 1.0, "glaze")),
        tondo=0.15,
    ),
    "oinochoe": Shape(
        outer=((0, 0), (0.10, 0), (0.10, 0.02), (0.08, 0.04), (0.15, 0.12), (0.235, 0.3), (0.255, 0.42),
               (0.22, 0.56), (0.12, 0.66), (0.085, 0.72), (0.09, 0.82), (0.13, 0.9), (0.135, 0.93)),
        inner=((0.115, 0.925), (0.075, 0.82), (0.07, 0.72), (0, 0.68)),
        handles=(_vertical(180, (0.2, 0.58), (0.12, 0.88), 0.12),),
        trefoil=0.22,
        bands=((0, 0.08, "glaze"), (0.08, 0.2, "rays"), (0.2, 0.22, "glaze"), (0.22, 0.35, "frieze"),
               (0.35, 0.37, "glaze"), (0.37, 0.52, "frieze"), (0.52, 0.55, "glaze"), (0.55, 0.66, "tongues"),
               (0.66, 1.0, "glaze")),
    ),
}


@dataclass(frozen=True)
class Decoration:
    """What the friezes show. Figure kinds: warrior, draped, runner, animal, dancer."""

    technique: str  # "black-figure" or "red-figure"
    side_a: tuple[str, ...] = ("warrior", "warrior")
    side_b: tuple[str, ...] = ("draped",)
    tondo: str = "runner"
    extra: dict = field(default_factory=dict)


def _profile(shape: Shape, rows: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(radius, height) at `rows` points evenly spaced along the profile; and the index of the lip."""
    from scipy.interpolate import PchipInterpolator

    points = np.array(shape.outer + shape.inner, dtype=float)
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    # Shape-preserving cubic (no overshoot) in the chord length: smooth walls without bulges past the points.
    spline = PchipInterpolator(chord, points, axis=0)
    dense = spline(np.linspace(0, chord[-1], rows * 8))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    s = np.linspace(0, arc[-1], rows)
    r = np.interp(s, arc, dense[:, 0])
    y = np.interp(s, arc, dense[:, 1])
    lip = int(np.argmax(y))  # the highest profile point is the lip
    r[0] = r[-1] = 0.0
    return r, y, lip


def _surface(shape: Shape, segments: int, rows: int):
    """Vertices (rows x segments+1 x 3), uv and normals of the vessel body."""
    r, y, _lip = _profile(shape, rows)
    theta = np.linspace(-math.pi, math.pi, segments + 1)  # -pi: the back; the seam lies under a back handle
    radius = np.repeat(r[:, None], segments + 1, axis=1)
    if shape.trefoil:
        top = y.max()
        ramp = np.clip((y - (top - 0.12)) / 0.12, 0, 1) ** 2
        radius = radius * (1 + shape.trefoil * ramp[:, None] * np.cos(3 * theta)[None, :])
    grid = np.stack([radius * np.sin(theta), np.repeat(y[:, None], segments + 1, axis=1), radius * np.cos(theta)],
                    axis=-1)
    ring = grid[:, :-1]  # without the duplicated seam column
    d_theta = np.roll(ring, -1, axis=1) - np.roll(ring, 1, axis=1)
    d_s = np.gradient(ring, axis=0)
    normals = np.cross(d_theta, d_s)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 1e-12)
    normals[0] = (0, -1, 0)  # the two poles on the axis: base centre faces down, inner floor centre up
    normals[-1] = (0, 1, 0)
    normals = np.concatenate([normals, normals[:, :1]], axis=1)
    u = (theta + math.pi) / (2 * math.pi)
    v = 1 - np.linspace(0, 1, rows)  # trimesh uv: v = 1 is the top row of the image
    uv = np.stack(np.meshgrid(u, v), axis=-1)
    return grid, uv, normals


def _grid_faces(rows: int, cols: int) -> np.ndarray:
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    return np.concatenate([np.stack([a, d, c], -1).reshape(-1, 3), np.stack([a, c, b], -1).reshape(-1, 3)])


def _bezier(control: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = control
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


def _handle_mesh(handle: Handle, steps: int = 28, sides: int = 12):
    import trimesh

    a = math.radians(handle.angle)
    radial, tangential = np.array([math.sin(a), 0, math.cos(a)]), np.array([math.cos(a), 0, -math.sin(a)])
    control = np.array([t * tangential + rr * radial + (0, yy, 0) for t, rr, yy in handle.control])
    path = _bezier(control, steps)
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    ref = np.cross(tangent[0], [0.0, 1.0, 0.0] if abs(tangent[0][1]) < 0.9 else [1.0, 0.0, 0.0])
    rings = []
    for i in range(steps):  # parallel transport of the cross-section frame along the path
        ref = ref - (ref @ tangent[i]) * tangent[i]
        ref /= np.linalg.norm(ref)
        side = np.cross(tangent[i], ref)
        angles = np.linspace(0, 2 * math.pi, sides, endpoint=False)
        rings.append(path[i] + handle.radius * (np.cos(angles)[:, None] * ref + np.sin(angles)[:, None] * side))
    vertices = np.concatenate(rings)
    idx = np.arange(steps * sides).reshape(steps, sides)
    nxt = np.roll(idx, -1, axis=1)
    faces = np.concatenate([np.stack([idx[:-1], idx[1:], nxt[1:]], -1).reshape(-1, 3),
                            np.stack([idx[:-1], nxt[1:], nxt[:-1]], -1).reshape(-1, 3)])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    # glTF vertex colours are linear (textures are sRGB): convert, or the handles come out lighter than the glaze.
    linear = np.round(255 * ((np.array(GLAZE) / 255 + 0.055) / 1.055) ** 2.4).astype(np.uint8)
    colours = np.tile(np.array([*linear, 255], dtype=np.uint8), (len(vertices), 1))
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colours)
    return mesh


# ---- painting -------------------------------------------------------------------------------------------------

def _figure(draw: ImageDraw.ImageDraw, kind: str, x: float, base: float, h: float, fill, detail, facing: int) -> None:
    """One silhouette, `h` pixels tall, standing on `base`, centred on x, facing right (1) or left (-1)."""
    f = facing
    head = h * 0.09
    if kind == "animal":
        body_w, body_h = h * 0.55, h * 0.22
        top = base - h * 0.62
        draw.ellipse([x - body_w / 2, top, x + body_w / 2, top + body_h], fill=fill)
        for dx in (-0.2, -0.12, 0.12, 0.2):
            lx = x + dx * h
            draw.polygon([(lx - h * 0.025, top + body_h * 0.6), (lx + h * 0.025, top + body_h * 0.6),
                          (lx + h * 0.015, base), (lx - h * 0.015, base)], fill=fill)
        nx = x + f * body_w * 0.45
        draw.polygon([(nx - f * h * 0.06, top + body_h * 0.3), (nx + f * h * 0.12, top - h * 0.18),
                      (nx + f * h * 0.2, top - h * 0.12), (nx + f * h * 0.05, top + body_h * 0.6)], fill=fill)
        draw.ellipse([nx + f * h * 0.1 - head, top - h * 0.22, nx + f * h * 0.1 + head * 1.4, top - h * 0.08],
                     fill=fill)
        tx = x - f * body_w / 2
        draw.line([(tx, top + body_h * 0.3), (tx - f * h * 0.15, top + body_h * 0.9)], fill=fill,
                  width=max(1, int(h * 0.03)))
        draw.line([(x - body_w * 0.3, top + body_h * 0.5), (x + body_w * 0.3, top + body_h * 0.5)], fill=detail,
                  width=max(1, int(h * 0.012)))
        return
    neck = base - h * 0.8
    draw.ellipse([x - head, neck - 2 * head, x + head, neck], fill=fill)
    hip = base - h * 0.42
    if kind == "draped":
        draw.polygon([(x - h * 0.08, neck), (x + h * 0.08, neck), (x + h * 0.14, base), (x - h * 0.14, base)],
                     fill=fill)
        for k in (-1, 0, 1):
            draw.line([(x + k * h * 0.03, neck + h * 0.2), (x + k * h * 0.06, base - h * 0.03)], fill=detail,
                      width=max(1, int(h * 0.012)))
        draw.line([(x, neck + h * 0.1), (x + f * h * 0.14, neck + h * 0.22)], fill=fill, width=max(1, int(h * 0.035)))
        return
    stride = {"warrior": 0.16, "runner": 0.24, "dancer": 0.18}.get(kind, 0.16)
    draw.polygon([(x - h * 0.075, neck), (x + h * 0.075, neck), (x + h * 0.06, hip), (x - h * 0.06, hip)], fill=fill)
    leg = max(2, int(h * 0.05))
    draw.line([(x, hip), (x + f * stride * h, base)], fill=fill, width=leg)
    draw.line([(x, hip), (x - f * stride * h * 0.8, base)], fill=fill, width=leg)
    arm = max(2, int(h * 0.035))
    if kind == "warrior":
        draw.line([(x - f * h * 0.3, neck - h * 0.05), (x + f * h * 0.45, neck + h * 0.12)], fill=fill,
                  width=max(1, int(h * 0.02)))  # spear
        sx = x + f * h * 0.12
        draw.ellipse([sx - h * 0.16, neck + h * 0.02, sx + h * 0.16, neck + h * 0.34], fill=fill)  # shield
        draw.ellipse([sx - h * 0.1, neck + h * 0.08, sx + h * 0.1, neck + h * 0.28], outline=detail,
                     width=max(1, int(h * 0.012)))
        draw.polygon([(x - head, neck - 2 * head), (x + f * head * 0.2, neck - 3.2 * head),
                      (x + head, neck - 2 * head)], fill=fill)  # crest
    else:
        lift = -0.25 if kind == "dancer" else 0.05
        draw.line([(x, neck + h * 0.06), (x + f * h * 0.22, neck + lift * h)], fill=fill, width=arm)
        draw.line([(x, neck + h * 0.06), (x - f * h * 0.2, neck + h * 0.2)], fill=fill, width=arm)
    draw.line([(x - h * 0.06, hip - h * 0.02), (x + h * 0.06, hip - h * 0.02)], fill=detail,
              width=max(1, int(h * 0.012)))  # belt: incised (black-figure) or painted (red-figure)


def _frieze(width: int, height: int, figures: tuple[str, ...], centre: float, span: float, fg, bg, detail,
            aspect: float) -> Image.Image:
    """A strip `width` x `height` with `figures` spread over `span` pixels around x = `centre`."""
    h = height * 0.86
    # Pixels are stretched around the circumference: draw on a canvas `aspect` times wider, then squeeze.
    canvas = Image.new("RGB", (max(1, int(width * aspect)), height), bg)
    cdraw = ImageDraw.Draw(canvas)
    n = len(figures)
    for i, kind in enumerate(figures):
        x = (centre + span * ((i + 0.5) / n - 0.5)) * aspect
        facing = 1 if i < n / 2 else -1
        if n == 1:
            facing = 1
        _figure(cdraw, kind, x, height * 0.94, h, fg, detail, facing)
    strip = canvas.resize((width, height), Image.LANCZOS)
    return strip


def _pattern(width: int, height: int, kind: str, dark, light, aspect: float) -> Image.Image:
    """A band of tongues, rays or a meander; `aspect` (see `_frieze`) keeps the motifs' proportions on the wall."""
    img = Image.new("RGB", (width, height), light)
    draw = ImageDraw.Draw(img)

    def count(proportion: float) -> int:  # motifs around the band, each `proportion` times as wide as the band
        return max(6, round(width * aspect / (proportion * height)))

    if kind == "tongues":
        n = count(0.45)
        step = width / n
        for i in range(n):
            draw.ellipse([i * step + step * 0.08, -height * 0.6, (i + 1) * step - step * 0.08, height * 0.95],
                         fill=dark if i % 2 == 0 else light, outline=dark)
        draw.line([(0, 0), (width, 0)], fill=dark, width=max(1, height // 10))
    elif kind == "rays":
        n = count(0.35)
        step = width / n
        for i in range(n):
            draw.polygon([(i * step, height), ((i + 1) * step, height), ((i + 0.5) * step, height * 0.05)], fill=dark)
    elif kind == "meander":
        n = count(1.1)
        step = width / n
        w = max(1, int(height * 0.12))
        top, bottom = height * 0.15, height * 0.85
        for i in range(n):
            x0 = i * step
            pts = [(x0, bottom), (x0, top), (x0 + step * 0.8, top), (x0 + step * 0.8, height * 0.62),
                   (x0 + step * 0.35, height * 0.62), (x0 + step * 0.35, height * 0.42),
                   (x0 + step * 0.55, height * 0.42)]
            draw.line(pts, fill=dark, width=w)
            draw.line([(x0, bottom), (x0 + step, bottom)], fill=dark, width=w)
    return img


def paint_texture(shape: Shape, decoration: Decoration, width: int, rows: int) -> Image.Image:
    """The texture: rows run along the profile (base centre at the top row, evenly spaced in arc length, as the
    mesh's v), columns around the circle (the back at the edges, the front in the middle)."""
    r, y, lip = _profile(shape, rows)
    red = decoration.technique == "red-figure"
    tex = np.empty((rows, width, 3), dtype=np.uint8)
    tex[:] = GLAZE_F
    foot_end = int(np.argmax(r[: lip] >= r[: lip].max() * 0.2)) if lip else 0
    # The underside of the foot: reserved clay with a glaze ring (as on many Attic feet).
    under = np.where((y[:lip] < 0.005) & (np.arange(lip) < max(foot_end, 1) * 4))[0]
    for j in under:
        tex[j] = GLAZE_F if 0.45 < r[j] / max(r[under].max(), 1e-6) < 0.6 else CLAY_F
    total = float(np.sum(np.hypot(np.diff(r), np.diff(y))))
    row_height = total / rows  # model units per texture row
    for low, high, kind in shape.bands:
        band_rows = [j for j in range(lip + 1) if low <= y[j] < high and y[j] > 0.005]
        if not band_rows:
            continue
        j0, j1 = min(band_rows), max(band_rows) + 1
        height = j1 - j0
        if kind == "glaze":
            tex[j0:j1] = GLAZE_F
            continue
        if kind == "clay":
            tex[j0:j1] = CLAY_F
            continue
        mid = float(np.mean(r[j0:j1]))
        aspect = (2 * math.pi * max(mid, 1e-3) / width) / row_height  # circumferential / vertical pixel size
        if kind == "frieze":
            fg, bg, detail = (CLAY, GLAZE, GLAZE) if red else (GLAZE, CLAY, CLAY)
            a = _frieze(width, height, decoration.side_a, width / 2, width * 0.42, fg, bg, detail, aspect)
            b = _frieze(width, height, decoration.side_b, width / 2, width * 0.42, fg, bg, detail, aspect)
            a, b = np.asarray(a), np.roll(np.asarray(b), width // 2, axis=1)
            u = np.linspace(0, 1, width, endpoint=False)
            use_a = (np.abs(u - 0.5) < 0.25)[None, :, None]
            tex[j0:j1] = np.where(use_a, a, b)[::-1]  # strips are drawn top-down; texture rows run up the wall
            continue
        tex[j0:j1] = np.asarray(_pattern(width, height, kind, GLAZE, CLAY, aspect))[::-1]
    if shape.tondo:
        _paint_tondo(tex, shape, decoration, r, y, lip)
    return Image.fromarray(tex)


def _paint_tondo(tex: np.ndarray, shape: Shape, decoration: Decoration, r: np.ndarray, y: np.ndarray,
                 lip: int) -> None:
    """Draw the tondo on a flat disc, then sample it at each inner-floor texel's (radius, angle): undistorted."""
    red = decoration.technique == "red-figure"
    size = 256
    disc = Image.new("RGB", (size, size), GLAZE)
    draw = ImageDraw.Draw(disc)
    c = size / 2
    draw.ellipse([2, 2, size - 2, size - 2], fill=GLAZE if red else CLAY)
    draw.ellipse([size * 0.06, size * 0.06, size * 0.94, size * 0.94], outline=CLAY if red else GLAZE,
                 width=max(2, size // 40))
    fg, detail = (CLAY, GLAZE) if red else (GLAZE, CLAY)
    _figure(draw, decoration.tondo, c, size * 0.84, size * 0.66, fg, detail, 1)
    pixels = np.asarray(disc)
    rows, width = tex.shape[:2]
    theta = np.linspace(-math.pi, math.pi, width, endpoint=False)
    for j in range(lip + 1, rows):
        if r[j] > shape.tondo:
            continue
        rel = r[j] / shape.tondo * (size / 2 - 1)
        # world (x, z) -> disc pixel: +X right, +Z (the front) down, as the top view shows it
        px = np.clip((c + rel * np.sin(theta)).astype(int), 0, size - 1)
        pz = np.clip((c + rel * np.cos(theta)).astype(int), 0, size - 1)
        tex[j] = pixels[pz, px]


def vase_scene(shape_name: str, decoration: Decoration, *, segments: int = 96, rows: int = 96,
               texture_width: int = 1024, texture_height: int | None = None):
    """A trimesh Scene: the textured body and its vertex-coloured handles, in metres-like units (height ~1)."""
    import trimesh

    shape = SHAPES[shape_name]
    grid, uv, normals = _surface(shape, segments, rows)
    image = paint_texture(shape, decoration, texture_width, texture_height or texture_width)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image, metallicFactor=0.0, roughnessFactor=0.45)
    faces = _grid_faces(rows, segments + 1)
    body = trimesh.Trimesh(grid.reshape(-1, 3), faces, vertex_normals=normals.reshape(-1, 3), process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv.reshape(-1, 2), material=material))
    if np.mean(np.sum(body.face_normals * normals.reshape(-1, 3)[faces[:, 0]], axis=1)) < 0:
        body.faces = body.faces[:, ::-1]  # wind the triangles to agree with the outward normals
    scene = trimesh.Scene()
    scene.add_geometry(body, geom_name="body")
    for i, handle in enumerate(shape.handles):
        scene.add_geometry(_handle_mesh(handle), geom_name=f"handle_{i}")
    return scene


def write_vase_glb(path: str | os.PathLike, shape_name: str, decoration: Decoration, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(vase_scene(shape_name, decoration, **kwargs).export(file_type="glb"))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--technique", default="black-figure", choices=("black-figure", "red-figure"))
    parser.add_argument("--segments", type=int, default=96)
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--texture_width", type=int, default=1024)
    args = parser.parse_args(argv)
    for name in args.shapes.split(","):
        out = write_vase_glb(Path(args.output_dir) / f"{name}.glb", name, Decoration(args.technique),
                             segments=args.segments, rows=args.rows, texture_width=args.texture_width)
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
