"""image_aspect_ratio_filter and image_size_filter: Data-Juicer 1.6.1 semantics pinned on adversarial samples.

Expected values are derived by hand from Data-Juicer 1.6.1's source: ops/filter/image_aspect_ratio_filter.py
(stat `aspect_ratios` = W / H per image, defaults 0.333 / 3.0 / any), ops/filter/image_size_filter.py (stat
`image_sizes` = os.path.getsize per image, defaults "0" / "1TB" / any), utils/mm_utils.py size_to_bytes (digits of
the string joined, letters = unit, binary multiples) and base_op.py Filter.get_keep_boolean (range flags).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dataprocess.filter import evaluate
from dataprocess.ops.image_filters import size_to_bytes
from dataprocess.recipe import build_recipe
from tests.fixtures.caption_data import make_image
from vlmkit.io import InputError
from vlmkit.streams import EmbeddedImage


def run(op: str, params: dict, samples: list[tuple]) -> list[tuple[dict, bool]]:
    recipe = build_recipe({"process": [{op: params}]}, "test")
    chunk = [("some text", tuple(str(p) if isinstance(p, Path) else p for p in imgs)) for imgs in samples]
    return [(stats, drop is None) for stats, drop in evaluate(recipe.ops, chunk)]


@pytest.fixture()
def imgs(tmp_path: Path) -> dict[str, Path]:
    return {
        "third": make_image(tmp_path / "third.jpg", (100, 300)),         # 0.3333... >= 0.333: kept by default
        "under": make_image(tmp_path / "under.jpg", (99, 300)),          # 0.33 < 0.333
        "three": make_image(tmp_path / "three.png", (300, 100), "PNG"),  # exactly 3.0 (inclusive)
        "over": make_image(tmp_path / "over.png", (301, 100), "PNG"),    # 3.01
        # stored 300x100, EXIF orientation 6 (rotate 90): loaded as 100x300, ratio 1/3
        "rotated": make_image(tmp_path / "rot.jpg", (300, 100), orientation=6),
    }


def test_aspect_ratio_defaults_bounds_and_exif(imgs) -> None:
    out = run("image_aspect_ratio_filter", {}, [(imgs["third"],), (imgs["under"],), (imgs["three"],),
                                                (imgs["over"],), (imgs["rotated"],), ()])
    assert [s["aspect_ratios"] for s, _ in out] == [[100 / 300], [99 / 300], [3.0], [3.01], [100 / 300], []]
    assert [k for _, k in out] == [True, False, True, False, True, True]  # no image: kept


def test_aspect_ratio_any_all_and_range_flags(imgs) -> None:
    both = [(imgs["under"], imgs["third"])]
    assert [k for _, k in run("image_aspect_ratio_filter", {}, both)] == [True]  # any: one passes
    assert [k for _, k in run("image_aspect_ratio_filter", {"any_or_all": "all"}, both)] == [False]
    # max_closed_interval false: exactly 3.0 is out
    assert [k for _, k in run("image_aspect_ratio_filter", {"max_closed_interval": False},
                              [(imgs["three"],)])] == [False]
    # reversed_range keeps (-inf, 0.333] and [3.0, inf): 3.0 and 3.01 kept, 1/3 dropped
    got = run("image_aspect_ratio_filter", {"reversed_range": True}, [(imgs["three"],), (imgs["over"],),
                                                                      (imgs["third"],)])
    assert [k for _, k in got] == [True, True, False]


def test_size_to_bytes_is_data_juicers_including_its_quirks() -> None:
    where = "test"
    assert size_to_bytes("0", "s", where) == 0
    assert size_to_bytes("1TB", "s", where) == 1 << 40
    assert size_to_bytes("10kb", "s", where) == 10 * 1024 and size_to_bytes("10KiB", "s", where) == 10240
    assert size_to_bytes("2 MiB", "s", where) == 2 << 20
    assert size_to_bytes("1.5MB", "s", where) == 15 << 20  # the digits are joined: "15" (Data-Juicer's behaviour)
    assert size_to_bytes(2048, "s", where) == 2048 and size_to_bytes("2048", "s", where) == 2048
    with pytest.raises(InputError, match="contains no number"):
        size_to_bytes("MB", "s", where)
    with pytest.raises(InputError, match="unknown unit 'xb'"):
        size_to_bytes("10XB", "s", where)


def test_image_size_filter_on_files_and_embedded_bytes(tmp_path: Path, imgs) -> None:
    sizes = {k: p.stat().st_size for k, p in imgs.items()}
    small, big = sorted(sizes.values())[0], sorted(sizes.values())[-1]
    params = {"min_size": str(small + 1), "max_size": str(big)}  # plain numbers are bytes; bounds inclusive
    order = sorted(imgs, key=sizes.get)
    out = run("image_size_filter", params, [(imgs[k],) for k in order] + [()])
    assert [s["image_sizes"] for s, _ in out] == [[sizes[k]] for k in order] + [[]]
    assert [k for _, k in out] == [False] + [True] * (len(order) - 1) + [True]
    blob = EmbeddedImage("data.parquet: row 0: image 0", b"x" * 5000)
    assert run("image_size_filter", {"min_size": "4KB"}, [(blob,)]) == [({"image_sizes": [5000]}, True)]
    assert run("image_size_filter", {"min_size": "5KB"}, [(blob,)]) == [({"image_sizes": [5000]}, False)]
    missing = run("image_size_filter", {}, [(tmp_path / "nowhere.jpg",)])
    assert missing[0][1] is False


def test_new_operators_in_a_recipe_run_through_the_filter_cli(tmp_path: Path, imgs) -> None:
    from dataprocess.filter import main
    from tests.fixtures.caption_data import read_jsonl, write_jsonl

    data = write_jsonl(tmp_path / "d.jsonl", [{"id": k, "text": "a caption", "images": [p.name]}
                                              for k, p in imgs.items()])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("process:\n  - image_size_filter:\n      max_size: 1MB\n  - image_aspect_ratio_filter:\n")
    assert main(["--recipe", str(recipe), "--dataset_path", str(data), "--export_path", str(tmp_path / "o.jsonl"),
                 "--no_progress", "--np", "1"]) == 0
    assert [r["id"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["third", "three", "rotated"]
    dropped = {r["id"]: r for r in read_jsonl(tmp_path / "o_dropped.jsonl")}
    assert dropped["under"]["op"] == "image_aspect_ratio_filter"
    assert dropped["under"]["reason"] == "no image of [0.33] has aspect_ratios in [0.333, 3]"


def test_image_deduplicator_keeps_the_first_of_each_perceptual_hash(tmp_path: Path) -> None:
    """Expected hashes come from imagededup itself (the library Data-Juicer's operator calls) on the RGB arrays."""
    import shutil

    import numpy as np
    from imagededup.methods import DHash, PHash
    from PIL import Image

    from dataprocess.filter import main
    from tests.fixtures.caption_data import read_jsonl, write_jsonl

    rng = np.random.RandomState(0)
    a = tmp_path / "a.png"
    Image.fromarray(rng.randint(0, 255, (64, 64, 3)).astype("uint8")).resize((256, 256)).save(a)
    shutil.copy(a, tmp_path / "a_copy.png")                                     # same bytes, other name
    Image.open(a).convert("RGB").save(tmp_path / "a_reencoded.jpg", quality=90)  # same picture, other bytes
    b = tmp_path / "b.png"
    Image.fromarray(rng.randint(0, 255, (64, 64, 3)).astype("uint8")).resize((256, 256)).save(b)
    names = ["a.png", "b.png", "a_copy.png", None, "a_reencoded.jpg", None, "b.png"]
    rows = [{"id": f"s{k}", "text": "same text", "images": [n] if n else []} for k, n in enumerate(names)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    for method, hasher in (("phash", PHash), ("dhash", DHash)):
        h = {n: hasher(verbose=False).encode_image(image_array=np.array(Image.open(tmp_path / n).convert("RGB")))
             for n in set(filter(None, names))}
        first: dict[str, str] = {}
        expected = [r["id"] for r, n in zip(rows, names, strict=True)
                    if n is None or first.setdefault(h[n], r["id"]) == r["id"]]
        recipe = tmp_path / f"{method}.yaml"
        recipe.write_text(f"process:\n  - image_deduplicator:\n      method: {method}\n")
        out = tmp_path / f"{method}.jsonl"
        assert main(["--recipe", str(recipe), "--dataset_path", str(data), "--export_path", str(out), "--no_progress",
                     "--np", "1", "--chunk_size", "2"]) == 0  # duplicates across chunks
        assert [r["id"] for r in read_jsonl(out)] == expected
        assert expected[:3] == ["s0", "s1", "s3"]  # the copy is always a duplicate; images-less samples kept
        dropped = {r["id"]: r for r in read_jsonl(tmp_path / f"{method}_dropped.jsonl")}
        assert dropped["s2"]["duplicate_of"] == "s0" and dropped["s6"]["duplicate_of"] == "s1"
        stats = read_jsonl(tmp_path / f"{method}_stats.jsonl")
        assert [s["kept"] for s in stats] == [r["id"] in expected for r in rows]


def test_a_deduplicator_must_be_last() -> None:
    with pytest.raises(InputError, match="must be the recipe's last operator"):
        build_recipe({"process": [{"image_deduplicator": {}}, {"text_length_filter": {}}]}, "r.yaml")


def test_image_text_similarity_filter_scores_chunks_like_data_juicer(tmp_path: Path, tiny_clip_dir: Path) -> None:
    """Expected values: CLIP run directly (transformers) on the chunks Data-Juicer's loop forms from each text."""
    import torch
    from PIL import Image, ImageOps
    from transformers import CLIPModel, CLIPProcessor

    red = make_image(tmp_path / "red.png", (64, 48), "PNG", color=(220, 30, 30))
    blue = make_image(tmp_path / "blue.png", (40, 64), "PNG", color=(20, 40, 230))
    img, eoc = "<__dj__image>", "<|__dj__eoc|>"
    texts = [
        f"{img} a red vase {eoc}",                                   # one chunk, one image
        f"{img}{img} two vases {eoc} no image here {eoc}",           # two images in one chunk; an imageless chunk
        f"first {img} {eoc}{img} second",                            # two chunks, one image each (the last without eoc)
        "no special tokens at all",                                  # nothing scored: kept
    ]
    images = [(red,), (red, blue), (blue, red), (red,)]
    model, processor = CLIPModel.from_pretrained(tiny_clip_dir).eval(), CLIPProcessor.from_pretrained(tiny_clip_dir)

    def clip(text: str, files: list, flip: bool = False) -> torch.Tensor:
        pics = [Image.open(f).convert("RGB") for f in files]
        pics = [ImageOps.mirror(p) for p in pics] if flip else pics
        inputs = processor(text=text, images=pics, return_tensors="pt", truncation=True, padding=True,
                           max_length=model.config.text_config.max_position_embeddings)
        with torch.no_grad():
            return model(**inputs).logits_per_text / 100.0

    expected = [[float(clip("a red vase", [red]).mean())],
                [float(clip("two vases", [red, blue]).mean())],
                [float(clip("first", [blue]).mean()), float(clip("second", [red]).mean())],
                []]
    params = {"hf_clip": str(tiny_clip_dir), "min_score": -1.0, "max_score": 1.0}
    recipe = build_recipe({"process": [{"image_text_similarity_filter": params}]}, "t")
    out = evaluate(recipe.ops, [(t, tuple(str(p) for p in ims)) for t, ims in zip(texts, images, strict=True)])
    got = [s["image_text_similarity"] for s, _ in out]
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=1e-6)
    assert all(d is None for _, d in out)
    # max reduce + horizontal flip on the two-image chunk; a threshold between the two chunk scores of text 2
    recipe = build_recipe({"process": [{"image_text_similarity_filter": {**params, "reduce_mode": "max",
                                                                          "horizontal_flip": True}}]}, "t")
    (stats, _), = evaluate(recipe.ops, [(texts[1], (str(red), str(blue)))])
    assert stats["image_text_similarity"] == pytest.approx([float(clip("two vases", [red, blue], True).max())],
                                                           abs=1e-6)
    lo, hi = sorted(expected[2])
    recipe = build_recipe({"process": [{"image_text_similarity_filter": {**params, "min_score": (lo + hi) / 2,
                                                                          "any_or_all": "all"}}]}, "t")
    assert [d is None for _, d in evaluate(recipe.ops, [(texts[2], (str(blue), str(red)))])] == [False]
    with pytest.raises(InputError, match="local CLIP model folder"):
        build_recipe({"process": [{"image_text_similarity_filter": {"hf_clip": "openai/clip-vit-base-patch32"}}]},
                     "t")
