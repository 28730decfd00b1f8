"""render.py: GLB models built with trimesh -> six shaded JPEG views, the camera convention, failures, resume, workers,
and qwen.py (tiny model) captioning the rendered tree end to end.

The renders need libOSMesa (CI installs libosmesa6 in .ci/run); elsewhere these tests skip with that reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmkit.ids import VIEWS, item_id
from vlmkit.io import InputError, read_json
from vlmkit.render.engine import platform_problem

_missing = platform_problem("osmesa")
pytestmark = pytest.mark.skipif(_missing is not None, reason=f"render tests need OSMesa: {_missing}")

SIZE = 64
MARKED = "marked-7_2_ac001001_textured_4k.glb"
RED, GREEN = (230, 20, 20), (20, 210, 20)


def _revolved(sections: int = 64):
    """A closed vase-like solid of revolution about +Y, coloured in bands by height (the same all around)."""
    import trimesh

    profile = np.array([[0.0, 0.0], [0.3, 0.0], [0.35, 0.3], [0.45, 0.6], [0.25, 0.9], [0.2, 1.1], [0.0, 1.1]])
    # trimesh revolves about +Z; turn the result so the axis is +Y.
    solid = trimesh.creation.revolve(profile, sections=sections)
    solid.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    height = solid.vertices[:, 1]
    colours = np.where((height > 0.45)[:, None] & (height < 0.75)[:, None], [40, 30, 25, 255], [200, 110, 60, 255])
    colours[height > 1.05] = [60, 140, 200, 255]  # a blue lid: the top view differs from the bottom view
    solid.visual = trimesh.visual.ColorVisuals(solid, vertex_colors=colours.astype(np.uint8))
    return solid


def _marker(position, colour):
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.12)
    ball.apply_translation(position)
    ball.visual = trimesh.visual.ColorVisuals(ball, vertex_colors=np.tile([*colour, 255], (len(ball.vertices), 1)))
    return ball


def write_glb(path: Path, *meshes, transform: np.ndarray | None = None) -> Path:
    import trimesh

    scene = trimesh.Scene()
    for i, mesh in enumerate(meshes):
        scene.add_geometry(mesh, geom_name=f"part{i}", transform=transform)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(scene.export(file_type="glb"))
    return path


def run_render(tmp_path: Path, *args: str) -> int:
    import render

    return render.main(["--size", str(SIZE), "--no_progress", *args])


def views_of(folder: Path, views: tuple[str, ...] = VIEWS) -> dict[str, np.ndarray]:
    return {v: np.asarray(Image.open(folder / f"{v}.jpg").convert("RGB"), dtype=float) for v in views}


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def marker_centre(image: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float]:
    """(x, y) of a marker's pixels as fractions of the image (0,0 = top left)."""
    main = int(np.argmax(colour))
    others = [c for c in range(3) if c != main]
    hit = (image[:, :, main] > 150) & (image[:, :, others[0]] < 100) & (image[:, :, others[1]] < 100)
    assert hit.sum() > 3, "the marker is not visible"
    ys, xs = np.nonzero(hit)
    return xs.mean() / image.shape[1], ys.mean() / image.shape[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("glb")
    write_glb(root / "0a1b-2c_1_ac001001_textured_4k.glb", _revolved())
    write_glb(root / MARKED, _revolved(), _marker([0.45, 0.6, 0.0], RED), _marker([0.0, 0.6, 0.45], GREEN))
    return root


@pytest.fixture(scope="module")
def rendered(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "multiview_images"
    assert run_render(out, "--input", str(models), "--output_dir", str(out)) == 0
    return out


def test_six_views_of_the_requested_size_shaded_and_symmetric(rendered: Path) -> None:
    folder = rendered / "0a1b-2c_1_ac001001_textured_4k.glb_shaded"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{v}.jpg" for v in VIEWS)
    images = views_of(folder)
    for view, image in images.items():
        assert Image.open(folder / f"{view}.jpg").size == (SIZE, SIZE)
        background = (image > 245).all(axis=2)
        assert 0.1 < 1 - background.mean() < 0.9, f"{view}: the model covers {1 - background.mean():.0%}"
        assert image[~background].std() > 8, f"{view} is flat: no shading or colour bands"
    # The solid is the same all around its axis and the key light follows the camera: the side views agree.
    for view in ("back", "left", "right"):
        assert diff(images["front"], images[view]) < 1.5, view
    assert diff(images["front"], images["top"]) > 20
    assert diff(images["top"], images["bottom"]) > 5  # blue lid on top, clay base below


def test_the_camera_convention_puts_plus_x_right_and_plus_z_front(rendered: Path) -> None:
    images = views_of(rendered / f"{MARKED}_shaded")
    # A red marker on the +X side, a green one on the +Z side (the front).
    assert marker_centre(images["front"], RED)[0] > 0.75  # +X is the front view's right
    assert 0.4 < marker_centre(images["front"], GREEN)[0] < 0.6  # the front faces the camera
    assert marker_centre(images["right"], GREEN)[0] < 0.25  # from +X, the front is on the left
    assert marker_centre(images["left"], GREEN)[0] > 0.75  # from -X, the front is on the right
    assert marker_centre(images["back"], RED)[0] < 0.25  # from behind, +X is on the left
    assert marker_centre(images["top"], GREEN)[1] > 0.6  # top view: the front at the bottom of the image
    assert marker_centre(images["top"], RED)[0] > 0.6
    assert marker_centre(images["bottom"], GREEN)[1] < 0.4  # bottom view: the front at the top
    assert diff(images["left"], images["right"]) > 2


def test_views_json_and_report(rendered: Path, models: Path) -> None:
    views = read_json(rendered / "views.json")
    assert views["views"]["front"]["camera_position"][2] > 0 and views["views"]["top"]["image_up"] == [0, 0, -1]
    assert views["image_size"] == [SIZE, SIZE]
    report = read_json(rendered / "render_report.json")
    assert report["status"] == "complete" and report["totals"]["rendered"] == 2
    assert report["totals"]["views_written"] == 12
    entry = next(e for e in report["models"] if e["folder"] == f"{MARKED}_shaded")
    assert entry["mesh"]["meshes"] == 3 and entry["mesh"]["appearance"] == ["vertex_colors"]
    assert entry["views"] == list(VIEWS) and entry["seconds"] > 0
    assert not [p for p in rendered.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_bad_empty_and_non_mesh_files_are_per_model_failures(models: Path, tmp_path: Path) -> None:
    import trimesh

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "good.glb").write_bytes((models / MARKED).read_bytes())
    (inputs / "garbage.glb").write_bytes(b"glTF not really" * 10)
    (inputs / "empty.glb").write_bytes(b"")
    trimesh.PointCloud(np.random.default_rng(0).random((40, 3))).export(inputs / "cloud.ply")
    (inputs / "notes.txt").write_text("not a model, ignored")
    out = tmp_path / "out"
    assert run_render(out, "--input", str(inputs), "--output_dir", str(out), "--views", "front,top") == 1
    report = read_json(out / "render_report.json")
    reasons = {Path(f["source"]).name: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"garbage.glb", "empty.glb", "cloud.ply"}
    assert reasons["empty.glb"] == "empty file (0 bytes)"
    assert "PointCloud" in reasons["cloud.ply"] and "cannot load" in reasons["garbage.glb"]
    assert report["totals"] == {"models": 4, "rendered": 1, "skipped": 0, "failed": 3, "not_reached": 0,
                                "views_written": 2}
    assert sorted(p.name for p in out.iterdir()) == ["good.glb_shaded", "render_report.json", "views.json"]
    assert sorted(p.name for p in (out / "good.glb_shaded").iterdir()) == ["front.jpg", "top.jpg"]


def test_resume_skips_finished_objects_and_redoes_incomplete_ones(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--input", str(models), "--output_dir", str(out)]
    assert run_render(out, *args) == 0
    with pytest.raises(InputError, match="--resume"):
        run_render(out, *args)  # existing views are never clobbered silently
    kept = out / f"{MARKED}_shaded" / "front.jpg"
    stamp = kept.stat().st_mtime_ns
    (out / "0a1b-2c_1_ac001001_textured_4k.glb_shaded" / "top.jpg").unlink()
    (out / ".render-staging-x.glb_shaded-99999").mkdir()  # as a kill -9 leaves it
    assert run_render(out, *args, "--resume") == 0
    assert kept.stat().st_mtime_ns == stamp
    assert (out / "0a1b-2c_1_ac001001_textured_4k.glb_shaded" / "top.jpg").is_file()
    report = read_json(out / "render_report.json")
    assert [e["status"] for e in report["models"]] == ["rendered", "skipped"]
    assert not (out / ".render-staging-x.glb_shaded-99999").exists()
    with pytest.raises(InputError, match="other settings"):
        run_render(out, *args, "--resume", "--yfov", "30")


def test_input_errors_are_checked_before_rendering(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for bad, match in ((["--size", "4"], "--size"), (["--background", "nocolour"], "--background"),
                       (["--up", "+y", "--front=-y"], "perpendicular"), (["--num_workers", "0"], "--num_workers")):
        with pytest.raises(InputError, match=match):
            run_render(out, "--input", str(models), "--output_dir", str(out), *bad)
    with pytest.raises(InputError, match="no model files"):
        run_render(out, "--input", str(tmp_path), "--output_dir", str(out))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        run_render(out, "--input", str(models), "--output_dir", str(tmp_path / "file"))
    assert not out.exists()


def test_z_up_assets_with_up_and_front_flags_render_like_y_up_ones(models: Path, rendered: Path,
                                                                    tmp_path: Path) -> None:
    import trimesh

    to_z_up = trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])  # +Y -> +Z, +Z -> -Y
    z_up = write_glb(tmp_path / "in" / MARKED, _revolved(), _marker([0.45, 0.6, 0.0], RED),
                     _marker([0.0, 0.6, 0.45], GREEN), transform=to_z_up)
    out = tmp_path / "out"
    assert run_render(out, "--input", str(z_up), "--output_dir", str(out), "--up", "+z", "--front=-y") == 0
    ours, reference = views_of(out / f"{MARKED}_shaded"), views_of(rendered / f"{MARKED}_shaded")
    for view in VIEWS:
        assert diff(ours[view], reference[view]) < 1.5, view


def test_parallel_workers_render_the_same_images(models: Path, rendered: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_render(out, "--input", str(models), "--output_dir", str(out), "--num_workers", "2") == 0
    for folder in (f"{MARKED}_shaded", "0a1b-2c_1_ac001001_textured_4k.glb_shaded"):
        for view in VIEWS:
            assert (out / folder / f"{view}.jpg").read_bytes() == (rendered / folder / f"{view}.jpg").read_bytes()


def test_textured_procedural_vase_honours_its_texture(tmp_path: Path) -> None:
    from demo.procedural import Decoration, write_vase_glb

    glb = write_vase_glb(tmp_path / "in" / "amphora.glb", "amphora", Decoration("red-figure"), segments=48, rows=48,
                         texture_width=256)
    out = tmp_path / "out"
    assert run_render(out, "--input", str(glb), "--output_dir", str(out), "--views", "front,top") == 0
    front = views_of(out / "amphora.glb_shaded", ("front",))["front"]
    clay = (front[:, :, 0] > 120) & (front[:, :, 0] - front[:, :, 2] > 60)  # orange figures and bands
    glaze = front.sum(axis=2) < 150
    assert clay.mean() > 0.02 and glaze.mean() > 0.1
    entry = read_json(out / "render_report.json")["models"][0]
    assert entry["mesh"]["appearance"] == ["texture", "vertex_colors"]


def test_qwen_captions_the_rendered_tree(rendered: Path, tiny_qwen2_5_vl_dir: Path, tmp_path: Path) -> None:
    import qwen

    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Describe the vase ({views_phrase}).", encoding="utf-8")
    out = tmp_path / "captions"
    assert qwen.main(["--model_path", str(tiny_qwen2_5_vl_dir), "--input_dir", str(rendered), "--output_dir",
                      str(out), "--max_new_tokens", "4", "--min_pixels", "784", "--max_pixels", "3136",
                      "--prompt_file", str(prompt), "--no_progress"]) == 0
    records = json.loads((out / "image_Qwen2.5-VL-tiny.json").read_text(encoding="utf-8"))
    assert sorted(item_id(r["images"][0]) for r in records) == ["0a1b-2c_1", "marked-7_2"]
    assert sorted(r["images"][0] for r in records) == ["0a1b-2c_1_ac001001.jpg", "marked-7_2_ac001001.jpg"]
    report = read_json(out / "Qwen2.5-VL-tiny_caption_generation_report.json")
    assert report["totals"]["captioned"] == 2 and report["totals"]["skipped_views"] == 0


def test_a_renderer_crash_is_a_failure_of_that_model_only(models: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a_1.glb", "crash_2.glb", "c_3.glb"):
        (inputs / name).write_bytes((models / MARKED).read_bytes())
    monkeypatch.setenv("VLMKIT_RENDER_CRASH_ON", "crash_2.glb")  # the worker aborts, as a GL driver crash would
    out = tmp_path / "out"
    assert run_render(out, "--input", str(inputs), "--output_dir", str(out), "--num_workers", "2",
                      "--views", "front") == 1
    report = read_json(out / "render_report.json")
    assert [(Path(e["source"]).name, e["status"]) for e in report["models"]] == [  # in input order
        ("a_1.glb", "rendered"), ("c_3.glb", "rendered"), ("crash_2.glb", "failed")]
    assert "died on this model" in report["failures"][0]["reason"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["a_1.glb_shaded", "c_3.glb_shaded"]
