"""Regenerate the bundled example data set (synthetic vase renders and caption files).

The renders are flat PIL drawings, not photographs: enough to exercise every script end to end.
Run from the repository root: `python examples/make_examples.py`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 160
COLLECTION = "ac001001"

# (uuid, n, shape, technique, ground truth, {model: caption})
VASES = [
    (
        "3f2a9c1e-8b4d-4e6a-9f1b-2c7d5e8a0b13", 1, "lekythos", "black",
        "Athenian black-figure lekythos, c. 525-475 BCE, depicting Herakles and the boar; Marathon, Attica.",
        {
            "qwen2.5-vl-3B": "Black-figure lekythos with a hero fighting an animal, Greek, 6th century BCE.",
            "qwen2.5-vl-3B-sft": "Athenian black-figure lekythos, c. 520-480 BCE, depicting Herakles and the boar; Attica.",
            "internvl3_5-4B": "A tall narrow Greek oil flask with black figures on an orange ground showing a fight.",
        },
    ),
    (
        "7c1e4b2a-0d9f-4a3c-8e5b-6f2a1d9c4e70", 2, "amphora", "red",
        "Athenian red-figure neck amphora, c. 480-460 BCE, depicting a warrior departing; Vulci, Etruria.",
        {
            "qwen2.5-vl-3B": "Red-figure amphora showing a warrior and a woman, Athens, 5th century BCE.",
            "qwen2.5-vl-3B-sft": "Athenian red-figure neck amphora, c. 470 BCE, depicting a warrior departing; Vulci, Etruria.",
            "internvl3_5-4B": "A large two-handled vase with orange figures of people on a black background.",
        },
    ),
    (
        "b9d0e3f1-5a2c-47b8-a1e6-0c3f9b7d2a54", 3, "hydria", "black",
        "Athenian black-figure hydria, c. 520-500 BCE, depicting women at a fountain house; Vulci, Etruria.",
        {
            "qwen2.5-vl-3B": "Black-figure hydria with women carrying water jars, Attic, late 6th century BCE.",
            "qwen2.5-vl-3B-sft": "Athenian black-figure hydria, c. 510 BCE, depicting women at a fountain house; Vulci.",
            "internvl3_5-4B": "A water jar with three handles decorated with black figures of women.",
        },
    ),
    (
        "e4a7b2c9-3f1d-4c8e-b6a0-9d5e2f1c7b38", 4, "krater", "red",
        "Athenian red-figure calyx krater, c. 450-440 BCE, depicting Dionysos and satyrs; Agrigento, Sicily.",
        {
            "qwen2.5-vl-3B": "Red-figure krater with Dionysian revelers, Greek, 5th century BCE.",
            "qwen2.5-vl-3B-sft": "Athenian red-figure calyx krater, c. 440 BCE, depicting Dionysos with satyrs and maenads.",
            "internvl3_5-4B": "A wide bowl-shaped vase with red figures dancing around a central god.",
        },
    ),
    (
        "0d6f8a3b-9e2c-4b1a-8c7d-5f4e3a2b1c96", 5, "kylix", "red",
        "Athenian red-figure kylix, c. 490-480 BCE, depicting an athlete with strigil in the tondo; Chiusi, Etruria.",
        {
            "qwen2.5-vl-3B": "Red-figure drinking cup with an athlete inside, Athens, early 5th century BCE.",
            "qwen2.5-vl-3B-sft": "Athenian red-figure kylix, c. 485 BCE, depicting an athlete with strigil in the tondo.",
            "internvl3_5-4B": "A shallow cup with two handles and a painted figure of a man in the center.",
        },
    ),
    (
        "5b3c2d1e-7f6a-4e9b-9a8c-1d0e2f3a4b87", 6, "oinochoe", "black",
        "Corinthian black-figure oinochoe, c. 600-575 BCE, with friezes of animals and rosettes; Corinth.",
        {
            "qwen2.5-vl-3B": "Black-figure wine jug with animal friezes, Corinthian, early 6th century BCE.",
            "qwen2.5-vl-3B-sft": "Corinthian black-figure oinochoe, c. 590 BCE, with animal friezes and rosettes; Corinth.",
            "internvl3_5-4B": "A jug with a trefoil mouth and bands of painted animals in dark paint.",
        },
    ),
]

# Half-width of each shape's profile at heights t in [0, 1] (0 = foot, 1 = lip).
PROFILES = {
    "lekythos": lambda t: 0.16 + 0.10 * math.sin(math.pi * min(t / 0.75, 1.0)) if t < 0.8 else 0.06,
    "amphora": lambda t: 0.12 + 0.22 * math.sin(math.pi * min(t / 0.8, 1.0)) if t < 0.85 else 0.11,
    "hydria": lambda t: 0.14 + 0.24 * math.sin(math.pi * min(t / 0.85, 1.0)) if t < 0.88 else 0.12,
    "krater": lambda t: 0.12 + 0.28 * t if t > 0.15 else 0.14,
    "kylix": lambda t: 0.08 if t < 0.5 else 0.08 + 0.34 * (t - 0.5) * 2,
    "oinochoe": lambda t: 0.12 + 0.2 * math.sin(math.pi * min(t / 0.8, 1.0)) if t < 0.82 else 0.09,
}
HEIGHT = {"kylix": 0.35, "krater": 0.7}
ORANGE, BLACK, BACKGROUND = (205, 110, 50), (25, 20, 18), (236, 236, 240)


def draw_side(shape: str, technique: str, view: str) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    h = HEIGHT.get(shape, 0.85) * SIZE
    base = SIZE * 0.93
    steps = 40
    left, right = [], []
    for i in range(steps + 1):
        t = i / steps
        w = PROFILES[shape](t) * SIZE
        y = base - t * h
        left.append((SIZE / 2 - w, y))
        right.append((SIZE / 2 + w, y))
    body, figure = (ORANGE, BLACK) if technique == "black" else (BLACK, ORANGE)
    draw.polygon(left + right[::-1], fill=body)
    # A figure frieze whose placement differs per view, so views are distinguishable.
    offset = {"front": 0.0, "back": 0.5, "left": 0.25, "right": 0.75}[view]
    band_y = base - 0.5 * h
    for k in range(3):
        x = SIZE / 2 + (k - 1 + offset - 0.25) * 0.12 * SIZE
        draw.ellipse([x - 4, band_y - 14, x + 4, band_y - 6], fill=figure)
        draw.rectangle([x - 3, band_y - 6, x + 3, band_y + 8], fill=figure)
    return img


def draw_end(shape: str, technique: str, view: str) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    body, figure = (ORANGE, BLACK) if technique == "black" else (BLACK, ORANGE)
    outer = max(PROFILES[shape](i / 20) for i in range(21)) * SIZE
    inner = (PROFILES[shape](1.0) if view == "top" else PROFILES[shape](0.0)) * SIZE
    c = SIZE / 2
    draw.ellipse([c - outer, c - outer, c + outer, c + outer], fill=body)
    draw.ellipse([c - inner, c - inner, c + inner, c + inner], fill=figure if view == "top" else BACKGROUND)
    return img


def main() -> None:
    root = HERE / "multiview_images"
    truth, generated = [], {}
    for uuid, n, shape, technique, gt, captions in VASES:
        folder = root / f"{uuid}_{n}_{COLLECTION}_textured_4k.glb_shaded"
        folder.mkdir(parents=True, exist_ok=True)
        for view in ("front", "back", "left", "right"):
            draw_side(shape, technique, view).save(folder / f"{view}.jpg", quality=85)
        for view in ("top", "bottom"):
            draw_end(shape, technique, view).save(folder / f"{view}.jpg", quality=85)
        name = f"{uuid}_{n}_{COLLECTION}.jpg"
        truth.append({"images": [name], "caption": gt})
        for model, caption in captions.items():
            generated.setdefault(model, []).append({"images": [name], "caption": caption, "data_by": model})
    (HERE / "groundTruth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n")
    captions_dir = HERE / "captions"
    captions_dir.mkdir(exist_ok=True)
    for model, records in generated.items():
        (captions_dir / f"image_{model}.json").write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
