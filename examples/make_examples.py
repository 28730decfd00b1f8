"""Rebuild the bundled example set: six procedural GLB vases rendered by render.py, their ground truth and the
captions of three example "models".

    python examples/make_examples.py                       # from the repository root
    python examples/make_examples.py --glb_dir ./data/glb  # also keep the GLB models (about 0.6 MB each)

The vases come from `vlmkit.render.procedural` (surfaces of revolution with black-figure or red-figure friezes, bands
and handles); render.py draws their six views at 256 px. The ground truth describes what each render shows; the three
caption files imitate a fine-tuned model (close to the ground truth), its base model (right shape and technique,
vaguer decoration) and a generic captioner.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from vlmkit.render.procedural import Decoration, write_vase_glb  # noqa: E402

COLLECTION = "ac001001"
SIZE = 256

# (uuid, n, shape, decoration, ground truth, {model: caption})
VASES = [
    (
        "3f2a9c1e-8b4d-4e6a-9f1b-2c7d5e8a0b13", 1, "lekythos",
        Decoration("black-figure", side_a=("warrior", "warrior"), side_b=("draped",)),
        "Attic black-figure lekythos: two warriors with shields and spears fighting on the body, a draped figure "
        "behind, a meander band and tongues on the shoulder, rays above the foot.",
        {
            "qwen2.5-vl-3B": "Black-figure lekythos with warriors in combat, Athens, late 6th century BCE.",
            "qwen2.5-vl-3B-sft": "Attic black-figure lekythos with two warriors fighting on the body, a draped figure "
                                 "behind, a meander and tongues on the shoulder, rays at the foot.",
            "internvl3_5-4B": "A tall narrow oil flask with black figures of soldiers on an orange body.",
        },
    ),
    (
        "7c1e4b2a-0d9f-4a3c-8e5b-6f2a1d9c4e70", 2, "amphora",
        Decoration("red-figure", side_a=("warrior", "draped"), side_b=("draped", "draped")),
        "Attic red-figure neck amphora: a warrior with shield and spear facing a draped woman on one side, two draped "
        "youths on the other, a meander band below and tongues on the shoulder.",
        {
            "qwen2.5-vl-3B": "Red-figure amphora showing a warrior and a woman, Athens, 5th century BCE.",
            "qwen2.5-vl-3B-sft": "Attic red-figure neck amphora: a warrior with shield and spear before a draped "
                                 "woman, two draped youths on the back, a meander band below.",
            "internvl3_5-4B": "A large two-handled vase with orange figures of people on a black background.",
        },
    ),
    (
        "b9d0e3f1-5a2c-47b8-a1e6-0c3f9b7d2a54", 3, "hydria",
        Decoration("black-figure", side_a=("draped", "draped", "draped"), side_b=("draped",)),
        "Attic black-figure hydria with three handles: a procession of draped women on the body, a meander and "
        "tongues on the shoulder, rays above the foot.",
        {
            "qwen2.5-vl-3B": "Black-figure hydria with women carrying water jars, Attic, late 6th century BCE.",
            "qwen2.5-vl-3B-sft": "Attic black-figure hydria with three handles, a procession of draped women on the "
                                 "body, tongues and a meander on the shoulder.",
            "internvl3_5-4B": "A water jar with three handles decorated with black figures of women.",
        },
    ),
    (
        "e4a7b2c9-3f1d-4c8e-b6a0-9d5e2f1c7b38", 4, "krater",
        Decoration("red-figure", side_a=("dancer", "dancer", "dancer"), side_b=("dancer", "draped")),
        "Attic red-figure calyx krater: a frieze of dancing revellers around the bowl, a meander band below the rim, "
        "tongues on the lower body and two upturned handles.",
        {
            "qwen2.5-vl-3B": "Red-figure krater with Dionysian revelers, Greek, 5th century BCE.",
            "qwen2.5-vl-3B-sft": "Attic red-figure calyx krater with dancing revellers around the bowl, a meander "
                                 "below the rim and two upturned handles.",
            "internvl3_5-4B": "A wide bowl-shaped vase with red figures dancing around.",
        },
    ),
    (
        "0d6f8a3b-9e2c-4b1a-8c7d-5f4e3a2b1c96", 5, "kylix",
        Decoration("red-figure", side_a=("runner", "runner"), side_b=("runner", "runner"), tondo="runner"),
        "Attic red-figure kylix on a tall stem: a running athlete in the tondo framed by a reserved ring, running "
        "athletes on the outside, two horizontal handles.",
        {
            "qwen2.5-vl-3B": "Red-figure drinking cup with an athlete inside, Athens, early 5th century BCE.",
            "qwen2.5-vl-3B-sft": "Attic red-figure kylix on a stem: an athlete running in the tondo, athletes "
                                 "running on the outside.",
            "internvl3_5-4B": "A shallow cup with two handles and a painted figure of a man in the center.",
        },
    ),
    (
        "5b3c2d1e-7f6a-4e9b-9a8c-1d0e2f3a4b87", 6, "oinochoe",
        Decoration("black-figure", side_a=("animal", "animal", "animal"), side_b=("animal", "animal")),
        "Corinthian-style black-figure oinochoe with a trefoil mouth: two friezes of animals around the body, "
        "tongues on the shoulder and rays above the foot.",
        {
            "qwen2.5-vl-3B": "Black-figure wine jug with animal friezes, Corinthian, early 6th century BCE.",
            "qwen2.5-vl-3B-sft": "Corinthian-style black-figure oinochoe with a trefoil mouth and two friezes of "
                                 "animals, tongues on the shoulder.",
            "internvl3_5-4B": "A jug with a trefoil mouth and bands of painted animals in dark paint.",
        },
    ),
]


def write_models(glb_dir: Path) -> None:
    for uuid, n, shape, decoration, *_ in VASES:
        write_vase_glb(glb_dir / f"{uuid}_{n}_{COLLECTION}_textured_4k.glb", shape, decoration)


STRIP_OBJECT = "7c1e4b2a-0d9f-4a3c-8e5b-6f2a1d9c4e70_2_ac001001_textured_4k.glb_shaded"  # the amphora
STRIP = REPO / "docs" / "images" / "example_views.png"


def write_strip(folder: Path, path: Path, size: int = 200) -> None:
    """The six views of one object side by side (the README's picture)."""
    from PIL import Image

    from vlmkit.ids import VIEWS

    strip = Image.new("RGB", (size * len(VIEWS), size), "white")
    for i, view in enumerate(VIEWS):
        strip.paste(Image.open(folder / f"{view}.jpg").convert("RGB").resize((size, size), Image.LANCZOS),
                    (i * size, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path, optimize=True)


def replace_dir(new: Path, target: Path) -> None:
    """Swap a finished folder into place (the old one is removed only after the new one is there)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glb_dir", type=Path, default=None, help="keep the generated GLB models here")
    parser.add_argument("--size", type=int, default=SIZE, help="pixels per view")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        glb_dir = args.glb_dir or Path(tmp) / "glb"
        write_models(glb_dir)
        rendered = Path(tmp) / "multiview_images"
        subprocess.run([sys.executable, str(REPO / "render.py"), "--input", str(glb_dir), "--output_dir",
                        str(rendered), "--size", str(args.size), "--quality", "85", "--no_progress"], check=True)
        for extra in ("render_report.json", "views.json"):  # the examples hold object folders only
            (rendered / extra).unlink()
        staged = HERE / ".multiview_images.new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(rendered, staged)
        replace_dir(staged, HERE / "multiview_images")
    write_strip(HERE / "multiview_images" / STRIP_OBJECT, STRIP)

    truth, generated = [], {}
    for uuid, n, _shape, _decoration, gt, captions in VASES:
        name = f"{uuid}_{n}_{COLLECTION}.jpg"
        truth.append({"images": [name], "caption": gt})
        for model, caption in captions.items():
            generated.setdefault(model, []).append({"images": [name], "caption": caption, "data_by": model})
    (HERE / "groundTruth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n")
    captions_dir = HERE / "captions"
    captions_dir.mkdir(exist_ok=True)
    for model, records in generated.items():
        (captions_dir / f"image_{model}.json").write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
