"""Rebuild the bundled example set: six procedural GLB vases rendered by render.py, their ground truth and the
captions of three example "models".

    python examples/make_examples.py                       # from the repository root
    python examples/make_examples.py --glb_dir ./data/glb  # also keep the GLB models (about 0.6 MB each)

    python examples/make_examples.py --data_dir ./data     # only the GLB models + ground truth, into ./data (the
                                                           # README tour's first step; examples/ is not touched)

The vases come from `demo.procedural` (surfaces of revolution with black-figure or red-figure friezes, bands
and handles); render.py draws their six views at 256 px. The ground truth describes what each render shows. The three
caption files are HAND-WRITTEN ILLUSTRATIONS, not model outputs: `illustration-close` imitates a fine-tuned model
(close to the ground truth), `illustration-vague` its base model (right shape and technique, vaguer decoration) and
`illustration-generic` a generic captioner, so that the demo table shows a good, a middling and a poor captioner.
`vqa/questions.jsonl` is a small VQA sample set on the renders (shape and technique of each vase; eval_vqa.py
--task vqa), for trying eval_vqa.sh without TextVQA or MMBench.
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

from demo.procedural import Decoration, write_vase_glb  # noqa: E402

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
            "illustration-vague": "Black-figure lekythos with warriors in combat, Athens, late 6th century BCE.",
            "illustration-close": "Attic black-figure lekythos with two warriors fighting on the body, a draped figure "
                                 "behind, a meander and tongues on the shoulder, rays at the foot.",
            "illustration-generic": "A tall narrow oil flask with black figures of soldiers on an orange body.",
        },
    ),
    (
        "7c1e4b2a-0d9f-4a3c-8e5b-6f2a1d9c4e70", 2, "amphora",
        Decoration("red-figure", side_a=("warrior", "draped"), side_b=("draped", "draped")),
        "Attic red-figure neck amphora: a warrior with shield and spear facing a draped woman on one side, two draped "
        "youths on the other, a meander band below and tongues on the shoulder.",
        {
            "illustration-vague": "Red-figure amphora showing a warrior and a woman, Athens, 5th century BCE.",
            "illustration-close": "Attic red-figure neck amphora: a warrior with shield and spear before a draped "
                                 "woman, two draped youths on the back, a meander band below.",
            "illustration-generic": "A large two-handled vase with orange figures of people on a black background.",
        },
    ),
    (
        "b9d0e3f1-5a2c-47b8-a1e6-0c3f9b7d2a54", 3, "hydria",
        Decoration("black-figure", side_a=("draped", "draped", "draped"), side_b=("draped",)),
        "Attic black-figure hydria with three handles: a procession of draped women on the body, a meander and "
        "tongues on the shoulder, rays above the foot.",
        {
            "illustration-vague": "Black-figure hydria with women carrying water jars, Attic, late 6th century BCE.",
            "illustration-close": "Attic black-figure hydria with three handles, a procession of draped women on the "
                                 "body, tongues and a meander on the shoulder.",
            "illustration-generic": "A water jar with three handles decorated with black figures of women.",
        },
    ),
    (
        "e4a7b2c9-3f1d-4c8e-b6a0-9d5e2f1c7b38", 4, "krater",
        Decoration("red-figure", side_a=("dancer", "dancer", "dancer"), side_b=("dancer", "draped")),
        "Attic red-figure calyx krater: a frieze of dancing revellers around the bowl, a meander band below the rim, "
        "tongues on the lower body and two upturned handles.",
        {
            "illustration-vague": "Red-figure krater with Dionysian revelers, Greek, 5th century BCE.",
            "illustration-close": "Attic red-figure calyx krater with dancing revellers around the bowl, a meander "
                                 "below the rim and two upturned handles.",
            "illustration-generic": "A wide bowl-shaped vase with red figures dancing around.",
        },
    ),
    (
        "0d6f8a3b-9e2c-4b1a-8c7d-5f4e3a2b1c96", 5, "kylix",
        Decoration("red-figure", side_a=("runner", "runner"), side_b=("runner", "runner"), tondo="runner"),
        "Attic red-figure kylix on a tall stem: a running athlete in the tondo framed by a reserved ring, running "
        "athletes on the outside, two horizontal handles.",
        {
            "illustration-vague": "Red-figure drinking cup with an athlete inside, Athens, early 5th century BCE.",
            "illustration-close": "Attic red-figure kylix on a stem: an athlete running in the tondo, athletes "
                                 "running on the outside.",
            "illustration-generic": "A shallow cup with two handles and a painted figure of a man in the center.",
        },
    ),
    (
        "5b3c2d1e-7f6a-4e9b-9a8c-1d0e2f3a4b87", 6, "oinochoe",
        Decoration("black-figure", side_a=("animal", "animal", "animal"), side_b=("animal", "animal")),
        "Corinthian-style black-figure oinochoe with a trefoil mouth: two friezes of animals around the body, "
        "tongues on the shoulder and rays above the foot.",
        {
            "illustration-vague": "Black-figure wine jug with animal friezes, Corinthian, early 6th century BCE.",
            "illustration-close": "Corinthian-style black-figure oinochoe with a trefoil mouth and two friezes of "
                                 "animals, tongues on the shoulder.",
            "illustration-generic": "A jug with a trefoil mouth and bands of painted animals in dark paint.",
        },
    ),
]


def vqa_questions() -> list[dict]:
    """Two questions per vase, answered from what the renders show (image paths relative to examples/vqa/)."""
    questions = []
    for uuid, n, shape, decoration, *_ in VASES:
        image = f"../multiview_images/{uuid}_{n}_{COLLECTION}_textured_4k.glb_shaded/front.jpg"
        questions.append({"question_id": len(questions), "image": image, "answers": [shape],
                          "question": "What is the shape of this vase? Answer with one word."})
        questions.append({"question_id": len(questions), "image": image, "answers": [decoration.technique],
                          "question": "Is this vase black-figure or red-figure?"})
    return questions


def ground_truth() -> list[dict]:
    return [{"images": [f"{uuid}_{n}_{COLLECTION}.jpg"], "caption": gt} for uuid, n, _s, _d, gt, _c in VASES]


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
    parser.add_argument("--data_dir", type=Path, default=None,
                        help="write only DATA_DIR/glb/*.glb and DATA_DIR/groundTruth.json (examples/ untouched)")
    args = parser.parse_args(argv)
    if args.data_dir:
        write_models(args.data_dir / "glb")
        (args.data_dir / "groundTruth.json").write_text(json.dumps(ground_truth(), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {len(VASES)} GLB models to {args.data_dir / 'glb'} and {args.data_dir / 'groundTruth.json'}")
        return 0
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
    assert truth == ground_truth()
    (HERE / "groundTruth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n")
    (HERE / "vqa").mkdir(exist_ok=True)
    (HERE / "vqa" / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in vqa_questions()))
    captions_dir = HERE / "captions"
    captions_dir.mkdir(exist_ok=True)
    for model, records in generated.items():
        (captions_dir / f"image_{model}.json").write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
