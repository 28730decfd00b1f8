"""dataprocess.filter: Data-Juicer 1.6.1 operator semantics pinned on hand-made samples, recipes, the CLI.

Expected values are derived by hand from Data-Juicer 1.6.1's source (data_juicer/ops/filter/*.py,
ops/common/helper_func.py, ops/base_op.py Filter.get_keep_boolean); the derivation is in each comment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataprocess.dj_text import count_words, emoji_keys, refine_words, special_characters, split_words
from dataprocess.filter import evaluate
from dataprocess.filter import main as filter_main
from dataprocess.recipe import build_recipe, load_recipe
from tests.fixtures.caption_data import make_corrupt, make_image, read_jsonl, write_jsonl
from vlmkit.cli import run_main
from vlmkit.io import InputError

REPO = Path(__file__).resolve().parent.parent
SEED_RECIPE = REPO / "dataprocess" / "recipes" / "blip2_caption_filter.yaml"


def run_op(op: str, params: dict, texts_images: list) -> list[tuple[dict, bool]]:
    """(stats, kept) for each (text, images) through one operator."""
    recipe = build_recipe({"process": [{op: params}]}, "test")
    chunk = [(t, tuple(str(p) for p in imgs)) if isinstance(t, str) else t for t, imgs in texts_images]
    return [(stats, drop is None) for stats, drop in evaluate(recipe.ops, chunk)]


def texts(op: str, params: dict, items: list[str]) -> list[tuple[dict, bool]]:
    return run_op(op, params, [(t, ()) for t in items])


# ---------------------------------------------------------------- tokenization and the special-character set

def test_vendored_special_characters_match_data_juicer() -> None:
    keys = emoji_keys()
    assert len(keys) == 4733 and sum(len(k) == 1 for k in keys) == 1386  # emoji 2.2.0 EMOJI_DATA
    special = special_characters()
    assert len(special) == 4965  # len(data_juicer.ops.common.SPECIAL_CHARACTERS) with emoji 2.2.0
    for ch in ("🏺", "😀", "一", "士", "…", "«", "\u200b", "\u3000", "\r", "7", "-"):
        assert ch in special, ch
    for ch in ("a", "Σ", "个", "\u200d"):
        assert ch not in special, ch


def test_data_juicer_word_split_and_refinement() -> None:
    # split only on " ", "\n", "\t" (not "\r", not U+3000); empty pieces dropped
    assert split_words("a\tb\nc\rd  e\u3000f") == ["a", "b", "c\rd", "e\u3000f"]
    # strip special characters at both ends, one character at a time: a ZWJ emoji sequence keeps its inner part
    assert refine_words(["(vase),", "🏺vase🏺", "...", "1234", "x1", "一个", "«quoted»", "👨\u200d👩\u200d👧"]) == [
        "vase", "vase", "x", "个", "quoted", "\u200d👩\u200d"]
    assert refine_words(["Vase", "ΣΑΣ"], lower_case=True) == ["vase", "σας"]
    assert count_words("A red-figure vase, c. 480 BCE 🏺") == 5  # A, red-figure, vase, c, BCE


# ---------------------------------------------------------------- words_num_filter

def test_words_num_filter_boundaries() -> None:
    out = texts("words_num_filter", {"min_num": 6, "max_num": 10}, [
        "one two three four five",                      # 5: just under min
        "one two three four five six",                  # 6: exactly min (inclusive)
        "🏺 one two three four five 😀",                # emoji words strip to nothing: 5
        "a, b; c. d! e? f",                             # punctuation stripped, words kept: 6
        " ".join(["w"] * 10),                           # 10: exactly max
        " ".join(["w"] * 11),                           # 11: just over max
        "1 2 3 4 5 6 seven",                            # digits are special characters: 1
        "one\ttwo\nthree four  five\rsix",              # \r does not split: 5
    ])
    assert [s["num_words"] for s, _ in out] == [5, 6, 5, 6, 10, 11, 1, 5]
    assert [k for _, k in out] == [False, True, False, True, True, False, False, False]


def test_words_num_filter_defaults_and_range_flags() -> None:
    nine, ten = " ".join(["w"] * 9), " ".join(["w"] * 10)
    assert [k for _, k in texts("words_num_filter", {}, [nine, ten])] == [False, True]  # default min_num 10
    words = [" ".join(["w"] * n) for n in (5, 6, 8, 10, 11)]
    bounds = {"min_num": 6, "max_num": 10}
    open_min = texts("words_num_filter", {**bounds, "min_closed_interval": False}, words)
    assert [k for _, k in open_min] == [False, False, True, True, False]
    open_max = texts("words_num_filter", {**bounds, "max_closed_interval": False}, words)
    assert [k for _, k in open_max] == [False, True, True, False, False]
    # reversed_range flips the closedness first, then negates: keeps (-inf, 6] and [10, +inf)
    reversed_ = texts("words_num_filter", {**bounds, "reversed_range": True}, words)
    assert [k for _, k in reversed_] == [True, True, False, True, True]


# ---------------------------------------------------------------- word_repetition_filter

def test_word_repetition_filter_ratios_and_boundaries() -> None:
    out = texts("word_repetition_filter", {"rep_len": 2, "max_ratio": 0.5}, [
        "a b a b c",        # 2-grams ab ba ab bc: ab twice -> 2/4 = 0.5 (exactly max: kept)
        "a b a b",          # ab ba ab -> 2/3
        "A b a B",          # lower-cased first: same as above
        "a. b, a! b?",      # stripped: same as above
        "a",                # fewer words than rep_len -> 0.0
        "",                 # no words -> 0.0
    ])
    assert [s["word_rep_ratio"] for s, _ in out] == [0.5, 2 / 3, 2 / 3, 2 / 3, 0.0, 0.0]
    assert [k for _, k in out] == [True, False, False, False, True, True]
    unigram = texts("word_repetition_filter", {"rep_len": 1, "min_ratio": 0.7, "max_ratio": 1.0}, ["a a b", "a a"])
    assert [(s["word_rep_ratio"], k) for s, k in unigram] == [(2 / 3, False), (1.0, True)]
    # default rep_len 10: nine identical words have no 10-gram at all
    assert texts("word_repetition_filter", {}, [" ".join(["x"] * 9)])[0][0]["word_rep_ratio"] == 0.0
    assert texts("word_repetition_filter", {}, [" ".join(["x"] * 11)])[0] == ({"word_rep_ratio": 1.0}, False)


# ---------------------------------------------------------------- character_repetition_filter

def test_character_repetition_filter_ratios_and_boundaries() -> None:
    out = texts("character_repetition_filter", {"rep_len": 3, "max_ratio": 0.5}, [
        "aaaa",        # aaa x2: 1 distinct, k=min(isqrt(1)=1, 1) -> 2/2 = 1.0
        "abcabc",      # abc x2, bca, cab: k=min(isqrt(3)=1, 1) -> 2/4 = 0.5 (exactly max: kept)
        "aaaaab",      # aaa x3, aab: k=min(1, 1) -> 3/4
        "abcdefgh",    # all distinct: no repeated n-gram -> 0/6 = 0.0
        "ab",          # shorter than rep_len -> 0.0
    ])
    assert [s["char_rep_ratio"] for s, _ in out] == [1.0, 0.5, 0.75, 0.0, 0.0]
    assert [k for _, k in out] == [False, True, False, True, True]
    # rep_len 1 on "aabbccdd": counts 2,2,2,2 -> k=min(isqrt(4)=2, 4)=2 -> (2+2)/8 = 0.5
    assert texts("character_repetition_filter", {"rep_len": 1}, ["aabbccdd"])[0] == ({"char_rep_ratio": 0.5}, True)
    # default rep_len 10 and max_ratio 0.5; emoji are one code point each
    assert texts("character_repetition_filter", {}, ["🏺" * 12])[0] == ({"char_rep_ratio": 1.0}, False)
    assert texts("character_repetition_filter", {"rep_len": 3, "max_ratio": 0.49}, ["abcabc"])[0][1] is False


# ---------------------------------------------------------------- text_length_filter

def test_text_length_filter_boundaries() -> None:
    out = texts("text_length_filter", {"min_len": 3, "max_len": 5},
                ["ab", "abc", "abcde", "abcdef", "e\u0301\u0301", "🏺" * 6, "a\nb"])
    assert [s["text_len"] for s, _ in out] == [2, 3, 5, 6, 3, 6, 3]  # code points, newlines included
    assert [k for _, k in out] == [False, True, True, False, True, False, True]
    assert [k for _, k in texts("text_length_filter", {}, ["x" * 9, "x" * 10])] == [False, True]  # min_len 10


# ---------------------------------------------------------------- image_shape_filter

def test_image_shape_filter_boundaries_any_all_and_exif(tmp_path: Path) -> None:
    sq = make_image(tmp_path / "224.jpg", (224, 224))
    narrow = make_image(tmp_path / "223x300.png", (223, 300), "PNG")
    low = make_image(tmp_path / "300x223.webp", (300, 223), "WEBP")
    big = make_image(tmp_path / "300.jpg", (300, 300))
    rotated = make_image(tmp_path / "rot.jpg", (300, 200), orientation=6)  # displayed 200 wide, 300 high
    wide = make_image(tmp_path / "301.jpg", (301, 250))
    params = {"min_width": 224, "min_height": 224, "max_width": 300}
    out = run_op("image_shape_filter", params, [
        ("", [sq]), ("", [narrow]), ("", [low]), ("", [narrow, big]), ("", []), ("", [rotated]), ("", [wide]),
    ])
    assert [(s["image_width"], s["image_height"]) for s, _ in out] == [
        ([224], [224]), ([223], [300]), ([300], [223]), ([223, 300], [300, 300]), ([], []), ([200], [300]),
        ([301], [250])]
    assert [k for _, k in out] == [True, False, False, True, True, False, False]
    out_all = run_op("image_shape_filter", {**params, "any_or_all": "all"}, [("", [narrow, big]), ("", [big, sq])])
    assert [k for _, k in out_all] == [False, True]
    with pytest.raises(InputError, match="any_or_all must be 'any' or 'all'"):
        build_recipe({"process": [{"image_shape_filter": {"any_or_all": "some"}}]}, "r.yaml")


def test_image_size_is_read_from_the_header_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    paths = [make_image(tmp_path / "a.jpg", (320, 240)), make_image(tmp_path / "b.png", (50, 60), "PNG")]

    def no_decode(self):
        raise AssertionError("image data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    out = run_op("image_shape_filter", {}, [("", paths)])
    assert out[0][0] == {"image_width": [320, 50], "image_height": [240, 60]}


def test_bad_images_drop_only_their_own_sample(tmp_path: Path) -> None:
    good = make_image(tmp_path / "good.jpg", (300, 300))
    corrupt = make_corrupt(tmp_path / "corrupt.jpg")
    recipe = build_recipe({"process": [{"image_shape_filter": {"min_width": 224}}]}, "test")
    results = evaluate(recipe.ops, [("", (str(good),)), ("", (str(corrupt),)), ("", (str(tmp_path / "gone.jpg"),)),
                                    ("", (str(good), str(corrupt)))])
    assert results[0] == ({"image_width": [300], "image_height": [300]}, None)
    assert [d[3] for _, d in results[1:]] == ["unreadable", "missing", "unreadable"]
    assert all(d[0] == 0 and d[2] for _, d in results[1:])


# ---------------------------------------------------------------- recipes

def test_seed_recipe_loads_with_data_juicer_defaults() -> None:
    recipe = load_recipe(SEED_RECIPE)
    assert [op.name for op in recipe.ops] == ["words_num_filter", "word_repetition_filter", "image_shape_filter",
                                              "character_repetition_filter", "text_length_filter"]
    p = [op.params for op in recipe.ops]
    assert p[0] == {"lang": "en", "tokenization": False, "min_num": 6, "max_num": 60}
    assert p[1] == {"lang": "en", "tokenization": False, "rep_len": 10, "min_ratio": 0.0, "max_ratio": 0.3}
    assert p[2]["min_width"] == 224 and p[2]["min_height"] == 224 and p[2]["any_or_all"] == "any"
    assert p[3] == {"rep_len": 10, "min_ratio": 0.0, "max_ratio": 0.15}
    assert p[4] == {"min_len": 20, "max_len": 300}
    assert recipe.text_key == "text" and recipe.image_key == "images" and recipe.eoc_special_token == "<|__dj__eoc|>"
    assert "project_name" in recipe.ignored_keys


@pytest.mark.parametrize(("cfg", "message"), [
    ({"process": [{"image_captioning_mapper": {}}]}, "unsupported operator 'image_captioning_mapper'; supported: "
                                                     "words_num_filter, word_repetition_filter"),
    ({"process": [{"words_num_filter": {"tokenization": True}}]}, "tokenization: true needs Data-Juicer's "
                                                                  "sentencepiece model"),
    ({"process": [{"words_num_filter": {"min_words": 3}}]}, "unknown parameter(s) min_words for words_num_filter"),
    ({"process": [{"character_repetition_filter": {"rep_len": 0}}]}, "'rep_len' must be a positive integer"),
    ({"process": [{"text_length_filter": {"min_len": "ten"}}]}, "'min_len' must be a number"),
    ({"process": [{"text_length_filter": {"text_key": "caption"}}]}, "per-operator 'text_key' is not supported"),
    ({"process": []}, "'process' must be a non-empty list"),
    ({"np": 0, "process": [{"text_length_filter": None}]}, "'np' must be a positive integer"),
])
def test_recipe_errors_are_one_line(cfg: dict, message: str) -> None:
    with pytest.raises(InputError) as err:
        build_recipe(cfg, "r.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_recipe_skip_unsupported_reuse_warning_and_yaml_errors(tmp_path: Path) -> None:
    recipe = build_recipe({"text_keys": ["caption", "other"], "process": [
        {"image_captioning_mapper": {"caption_num": 1}},
        {"character_repetition_filter": {"rep_len": 3}},
        {"character_repetition_filter": {"rep_len": 5, "max_ratio": 0.9, "batch_size": 10}},
    ]}, "r.yaml", skip_unsupported=True)
    assert recipe.text_key == "caption"  # Data-Juicer uses the first of text_keys
    assert recipe.skipped_ops == [{"op": "image_captioning_mapper", "index": 0, "params": {"caption_num": 1}}]
    assert "reuses 'char_rep_ratio'" in recipe.warnings[0]
    # as in Data-Juicer, the second op reuses rep_len 3's ratio (abcabc: 0.5) with its own max_ratio
    results = evaluate(recipe.ops, [("abcabc", ())])
    assert results == [({"char_rep_ratio": 0.5}, None)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("process:\n  - words_num_filter: {min_num: 3\n")
    with pytest.raises(InputError, match=r"bad.yaml: malformed YAML at line \d+"):
        load_recipe(bad)


# ---------------------------------------------------------------- the CLI end to end

def _dj_rows(img: Path) -> list[dict]:
    good = "A red-figure amphora showing a warrior leaving home with his shield"  # 11 words, 67 chars
    return [
        {"id": "ok", "text": good, "images": [f"{img}/good.jpg"]},
        {"id": "short", "text": "A vase.", "images": [f"{img}/good.jpg"]},
        {"id": "small", "text": good, "images": [f"{img}/small.jpg"]},
        {"id": "corrupt", "text": good, "images": [f"{img}/corrupt.jpg"]},
        {"id": "missing", "text": good, "images": ["img/missing.jpg"]},
        {"id": "ok2", "text": good + " again", "images": ["img/good.jpg"], "__dj__stats__": {"num_words": 99}},
        {"id": "rep", "text": "vase vase vase vase vase vase vase vase vase vase vase vase", "images": []},
    ]


@pytest.fixture()
def dj_data(tmp_path: Path) -> Path:
    make_image(tmp_path / "img" / "good.jpg", (300, 260))
    make_image(tmp_path / "img" / "small.jpg", (100, 300))
    make_corrupt(tmp_path / "img" / "corrupt.jpg")
    return write_jsonl(tmp_path / "data.jsonl", _dj_rows(tmp_path / "img"))


def test_filter_cli_outputs_stats_manifest_and_summary(dj_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "kept.jsonl"
    assert filter_main(["--recipe", str(SEED_RECIPE), "--dataset_path", str(dj_data), "--export_path", str(out),
                        "--np", "1", "--no_progress"]) == 0
    kept = read_jsonl(out)
    assert [r["id"] for r in kept] == ["ok", "ok2"]
    assert "__dj__stats__" not in kept[1]  # stale input stats are dropped, never reused
    assert kept[0] == _dj_rows(tmp_path / "img")[0]  # kept lines are the input objects
    stats = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "kept_stats.jsonl")}
    assert stats["ok"] == {"id": "ok", "kept": True, "__dj__stats__": {
        "num_words": 11, "word_rep_ratio": 0.0, "image_width": [300], "image_height": [260], "char_rep_ratio": 0.0,
        "text_len": 67}}
    assert stats["ok2"]["__dj__stats__"]["num_words"] == 12
    dropped = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "kept_dropped.jsonl")}
    assert list(dropped) == ["short", "small", "corrupt", "missing", "rep"]
    assert dropped["short"]["op"] == "words_num_filter" and dropped["short"]["reason"] == "num_words=2 not in [6, 60]"
    assert dropped["short"]["stats"] == {"num_words": 2}
    assert dropped["small"]["op"] == "image_shape_filter" and "100x300" in dropped["small"]["reason"]
    assert dropped["corrupt"]["image_problem"] == "unreadable" and dropped["missing"]["image_problem"] == "missing"
    assert dropped["missing"]["image"].endswith("img/missing.jpg")  # resolved against the data file's folder
    assert dropped["rep"]["op"] == "word_repetition_filter"  # 12 x "vase": every 10-gram repeated -> 1.0
    summary = json.loads((tmp_path / "out" / "kept_summary.json").read_text())
    assert (summary["total"], summary["kept"], summary["dropped"]) == (7, 2, 5)
    assert [(o["op"], o["seen"], o["dropped"]) for o in summary["ops"]] == [
        ("words_num_filter", 7, 1), ("word_repetition_filter", 6, 1), ("image_shape_filter", 5, 3),
        ("character_repetition_filter", 2, 0), ("text_length_filter", 2, 0)]
    assert summary["ops"][2]["dropped_bad_image"] == 2
    assert summary["bad_images"]["samples_dropped"] == 2
    assert (summary["bad_images"]["missing"], summary["bad_images"]["unreadable"]) == (1, 1)
    assert {i["id"] for i in summary["bad_images"]["items"]} == {"corrupt", "missing"}


def test_filter_multiprocessing_is_deterministic(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg", (300, 300))
    make_image(tmp_path / "b.jpg", (100, 100))
    rows = [{"id": str(i), "text": " ".join(["word"] + [f"w{j}" for j in range(i % 70)]),
             "images": ["a.jpg" if i % 3 else "b.jpg"]} for i in range(240)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    outs = []
    for np_, chunk in (("1", "1000"), ("2", "7")):
        out = tmp_path / f"np{np_}" / "k.jsonl"
        filter_main(["--recipe", str(SEED_RECIPE), "--dataset_path", str(data), "--export_path", str(out),
                     "--np", np_, "--chunk_size", chunk, "--no_progress"])
        outs.append([out.read_text(), (out.parent / "k_stats.jsonl").read_text(),
                     (out.parent / "k_dropped.jsonl").read_text()])
        assert json.loads((out.parent / "k_summary.json").read_text())["np"] == int(np_)
    assert outs[0] == outs[1]


def test_filter_training_jsonl_text_views_and_caption_input(tmp_path: Path, examples_copy: Path) -> None:
    make_image(tmp_path / "v.jpg", (300, 300))
    answer = "A black-figure lekythos with Herakles fighting the boar"  # 9 words, 55 chars
    sample = {"id": "s1", "images": ["v.jpg"], "source": "x",
              "conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": answer}]}
    data = write_jsonl(tmp_path / "train.jsonl", [sample])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("process:\n  - text_length_filter: {min_len: 1, max_len: 200}\n")
    for view, length in (("answers", 55), ("dj", len(f"[[human]]: <image>\nDescribe.\n[[gpt]]: {answer} "
                                                      "<|__dj__eoc|>"))):
        out = tmp_path / view / "t.jsonl"
        filter_main(["--recipe", str(recipe), "--dataset_path", str(data), "--export_path", str(out),
                     "--text_view", view, "--np", "1", "--no_progress"])
        assert read_jsonl(out) == [sample]
        assert read_jsonl(out.parent / "t_stats.jsonl")[0]["__dj__stats__"] == {"text_len": length}
    # caption JSON with multi-view folders: images are each object's views; output keeps the JSON list format
    out = tmp_path / "gt" / "kept.json"
    filter_main(["--recipe", str(SEED_RECIPE), "--dataset_path", str(examples_copy / "groundTruth.json"),
                 "--multiview_dir", str(examples_copy / "multiview_images"), "--views", "front,back",
                 "--export_path", str(out), "--np", "1", "--no_progress"])
    # the example renders are 256 px >= 224 and their captions pass the text filters: every record is kept
    assert json.loads(out.read_text()) == json.loads((examples_copy / "groundTruth.json").read_text())
    stats = read_jsonl(tmp_path / "gt" / "kept_stats.jsonl")
    assert len(stats) == 6 and stats[0]["__dj__stats__"]["image_width"] == [256, 256]


def test_parity_mode_skips_cleanly_without_data_juicer(dj_data: Path, tmp_path: Path) -> None:
    try:
        import data_juicer  # noqa: F401
        pytest.skip("py-data-juicer is installed here; parity is exercised for real")
    except ImportError:
        pass
    out = tmp_path / "p" / "k.jsonl"
    assert filter_main(["--recipe", str(SEED_RECIPE), "--dataset_path", str(dj_data), "--export_path", str(out),
                        "--parity", "--np", "1", "--no_progress"]) == 0
    parity = json.loads((tmp_path / "p" / "k_summary.json").read_text())["parity"]
    assert parity["status"] == "skipped" and "py-data-juicer is not importable" in parity["reason"]


@pytest.mark.parametrize(("args", "message"), [
    (["--recipe", "{tmp}/none.yaml"], "none.yaml: recipe not found"),
    (["--recipe", "{recipe}", "--dataset_path", "{tmp}/nothing.jsonl"], "nothing.jsonl: input file not found"),
    (["--recipe", "{recipe}", "--dataset_path", "{bad}"], "bad.jsonl: line 2: malformed JSON"),
    (["--recipe", "{recipe}", "--dataset_path", "{notext}"], "notext.jsonl: line 1: text field 'text' must be"),
    (["--recipe", "{recipe}", "--dataset_path", "{data}", "--export_path", "{data}"], "output path is also an input"),
    (["--recipe", "{recipe}", "--dataset_path", "{data}", "--export_path", "{tmp}/out/k.json"],
     "the export path must end in .jsonl"),
])
def test_filter_cli_bad_inputs(tmp_path: Path, dj_data: Path, capsys: pytest.CaptureFixture, args: list[str],
                               message: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("process:\n  - text_length_filter:\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "images": []}\n{"text": oops}\n')
    notext = write_jsonl(tmp_path / "notext.jsonl", [{"caption": "x"}])
    subst = {"tmp": tmp_path, "recipe": recipe, "bad": bad, "notext": notext, "data": dj_data}
    argv = [a.format(**subst) for a in args]
    if "--export_path" not in argv:
        argv += ["--export_path", str(tmp_path / "out" / "k.jsonl")]
    before = dj_data.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        run_main(filter_main, argv + ["--no_progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "out").exists()  # no partial outputs
    assert dj_data.read_bytes() == before
