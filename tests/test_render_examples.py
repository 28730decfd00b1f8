"""The bundled examples: render.py renders of make_examples.py's vases, described by their ground truth."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from PIL import Image

from vlmkit.ids import VIEWS
from vlmkit.prompt import MULTIVIEW_PROMPT
from vlmkit.records import load_caption_records


def make_examples(repo_root: Path):
    spec = importlib.util.spec_from_file_location("make_examples", repo_root / "examples" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_ground_truth_caption_is_the_prompts_own_example(repo_root: Path) -> None:
    example = re.search(r'style of:\n"(.+)"', MULTIVIEW_PROMPT).group(1)
    truth = load_caption_records(repo_root / "examples" / "groundTruth.json")
    assert example.startswith("Athenian black-figure lekythos") and len(truth) == 6
    assert all(record.caption != example for record in truth)
    for path in (repo_root / "examples" / "captions").glob("image_*.json"):
        assert all(record.caption != example for record in load_caption_records(path))


def test_the_example_files_are_what_make_examples_writes(repo_root: Path) -> None:
    module = make_examples(repo_root)
    truth = load_caption_records(repo_root / "examples" / "groundTruth.json")
    assert [(r.images[0], r.caption) for r in truth] == [
        (f"{uuid}_{n}_{module.COLLECTION}.jpg", gt) for uuid, n, _shape, _decoration, gt, _captions in module.VASES]
    folders = sorted(p.name for p in (repo_root / "examples" / "multiview_images").iterdir())
    assert folders == sorted(f"{uuid}_{n}_{module.COLLECTION}_textured_4k.glb_shaded"
                             for uuid, n, *_ in module.VASES)
    for folder in folders:
        for view in VIEWS:
            with Image.open(repo_root / "examples" / "multiview_images" / folder / f"{view}.jpg") as image:
                assert image.size == (module.SIZE, module.SIZE) and image.format == "JPEG"
    assert (repo_root / "docs" / "images" / "example_views.png").is_file()
