"""Every CLI against bad input: one `error:` line naming the file/item and exit 2, or a counted per-item failure
(exit 1, listed in the run's report), never a traceback, and an earlier output left as it was.

The CLIs run in-process through `run_main` (an unexpected exception fails the test with its traceback). One
module-scoped "world" holds every broken input (images, JSON, recipes, model and adapter folders); each case gets a
fresh output folder that already holds an earlier run's output, which an exit-2 case must leave byte-identical.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import caption
import compare
import compare_vqa
import download_models
import eval_vqa
import internvl
import merge_lora_weights
import qwen
import render
import retrieval
import train
from dataprocess import augment, convert, explore
from dataprocess import filter as dp_filter
from tests.fixtures.bad_files import bad_image, truncate_file
from tests.fixtures.caption_data import make_image, write_json, write_jsonl
from tests.fixtures.vqa_data import write_textvqa
from vlmkit.cli import run_main
from vlmkit.io import read_json, read_jsonl
from vlmkit.samples import caption_sample

MAINS = {"qwen": qwen.main, "internvl": internvl.main, "caption": caption.main, "compare": compare.main,
         "explore": explore.main, "filter": dp_filter.main, "convert": convert.main, "augment": augment.main,
         "merge": merge_lora_weights.main, "train": train.main, "retrieval": retrieval.main,
         "eval_vqa": eval_vqa.main, "compare_vqa": compare_vqa.main, "render": render.main,
         "download": download_models.main}
NEW_CLIS = {"retrieval", "eval_vqa", "compare_vqa", "render", "download"}  # their inputs: the `commands` fixture
IDS = ["0000000a-aaaa-4bbb-8ccc-dddddddddddd_1", "0000000b-aaaa-4bbb-8ccc-dddddddddddd_2"]
PREVIOUS = {"images": ["previous_9.jpg"], "caption": "a caption from an earlier run", "data_by": "earlier"}
PREVIOUS_SAMPLE = caption_sample("previous_9", ["img/good1.jpg"], "an earlier caption").to_json()
GEN = "--output_dir {OUT}/captions --output_name image_x.json --resume --no_progress --max_new_tokens 2"
QWEN = GEN + " --min_pixels 784 --max_pixels 3136"
MERGE_SHARDS = QWEN.replace("--resume", "--overwrite")
COMPARE = "--ground_truth {W}/gt.json --output_dir {OUT}/results --no_coco --clip_model none --metrics lexical"
FILTER = "--dataset_path {W}/dj.jsonl --export_path {OUT}/filtered/kept.jsonl --no_progress --np 1"
MERGE = "--output_dir {OUT}/merged"
RTRAIN = "train {W}/rcfg/ok.yaml --config_override output_dir={OUT}/rtrain"
REVAL = "eval --model {clipw} --data {W}/shapes/val.jsonl --output {OUT}/reval.json --bootstrap 10"
RINDEX = "index --model {clipw} --images {W}/shapes/images --output {OUT}/rindex"
RSERVE = "serve --index {W}/rindex"
VQA = "--task textvqa --annotations {W}/textvqa/TextVQA_0.5.1_val.json --score_only --output_dir {OUT}/vqa"


def _object_name(iid: str) -> str:
    return f"{iid}_ac001001_textured_4k.glb_shaded"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_qwen2_5_vl_dir: Path) -> Path:
    """Every input of the matrix, good and broken, built once."""
    w = tmp_path_factory.mktemp("world")
    views = ("front", "back")
    # multi-view objects: good, one bad view, every view bad
    for name, bad_views, kind in (("mv", (), ""), ("mv_badview", ("front",), "bomb"), ("mv_allbad", views, "bomb"),
                                  ("mv_truncated", ("back",), "truncated")):
        for k, iid in enumerate(IDS):
            folder = w / name / _object_name(iid)
            for v in views:
                if k == 1 and v in bad_views:
                    bad_image(folder / f"{v}.{'png' if kind == 'bomb' else 'jpg'}", kind)
                else:
                    make_image(folder / f"{v}.jpg", (32, 32), color=(40 * k, 90, 30))
    # flat folders: one good image and one bad one of each kind
    for kind in ("bomb", "truncated", "empty", "text"):
        make_image(w / f"flat_{kind}" / "good1.jpg", (32, 32))
        bad_image(w / f"flat_{kind}" / "bad2.jpg", kind)
    make_image(w / "flat" / "good1.jpg", (32, 32))
    make_image(w / "img" / "good1.jpg", (40, 30))
    bad_image(w / "img" / "bomb.png", "bomb")
    (w / "empty_dir").mkdir()
    (w / "prompt_bom.txt").write_bytes("\ufeffDescribe the vase.".encode())

    # model folders
    models = w / "models"
    for name in ("only_config", "bad_config", "truncated", "empty_weights", "missing_shard"):
        (models / name).mkdir(parents=True)
    shutil.copy(tiny_qwen2_5_vl_dir / "config.json", models / "only_config" / "config.json")
    shutil.copytree(tiny_qwen2_5_vl_dir, models / "bad_config", dirs_exist_ok=True)
    (models / "bad_config" / "config.json").write_text('{"model_type": "qwen2_5_vl",')
    shutil.copytree(tiny_qwen2_5_vl_dir, models / "truncated", dirs_exist_ok=True)
    truncate_file(models / "truncated" / "model.safetensors")
    shutil.copytree(tiny_qwen2_5_vl_dir, models / "empty_weights", dirs_exist_ok=True)
    (models / "empty_weights" / "model.safetensors").write_bytes(b"")
    shutil.copy(tiny_qwen2_5_vl_dir / "config.json", models / "missing_shard" / "config.json")
    write_json(models / "missing_shard" / "model.safetensors.index.json",
               {"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                               "b.weight": "model-00002-of-00002.safetensors"}})
    (models / "no_config").mkdir()
    # adapter folders (adapter_model.safetensors copied from a real file, then broken)
    lora = {"peft_type": "LORA", "base_model_name_or_path": str(tiny_qwen2_5_vl_dir), "r": 4,
            "target_modules": ["q_proj"]}
    adapters = w / "adapters"
    for name, config in (("bad_json", "{oops"), ("list_json", "[]"), ("no_peft_type", json.dumps({"r": 4})),
                         ("truncated", json.dumps(lora)), ("no_weights", json.dumps(lora)),
                         ("truncated_base", json.dumps({**lora, "base_model_name_or_path": str(models / "truncated")})),
                         ("base_gone", json.dumps({**lora, "base_model_name_or_path": str(w / "gone")}))):
        (adapters / name).mkdir(parents=True)
        (adapters / name / "adapter_config.json").write_text(config)
        if name not in ("no_weights",):
            shutil.copy(tiny_qwen2_5_vl_dir / "model.safetensors", adapters / name / "adapter_model.safetensors")
    truncate_file(adapters / "truncated" / "adapter_model.safetensors", 0.3)
    (adapters / "projector").mkdir()
    shutil.copy(tiny_qwen2_5_vl_dir / "model.safetensors", adapters / "projector" / "projector.safetensors")
    truncate_file(adapters / "projector" / "projector.safetensors")
    write_json(adapters / "projector" / "vlmkit_training.json", {"base_model": str(tiny_qwen2_5_vl_dir)})

    # caption files for compare
    truth = ["Black-figure lekythos with Herakles.", "Red-figure amphora with a warrior."]
    records = [{"images": [f"{iid}_ac001001.jpg"], "caption": c} for iid, c in zip(IDS, truth, strict=True)]
    write_json(w / "gt.json", records)
    write_json(w / "gen" / "image_good.json", [{**r, "data_by": "good"} for r in records])
    (w / "gen" / "image_bom.json").write_bytes(b"\xef\xbb\xbf" + (w / "gen" / "image_good.json").read_bytes())
    (w / "gen" / "image_malformed.json").write_text('[{"images": ["x.jpg"], "caption": "a"')
    write_json(w / "gen" / "image_empty.json", [{**records[0], "caption": "  "}, records[1]])
    write_json(w / "gen" / "image_wrongtype.json", [{**records[0], "caption": 5}, records[1]])
    write_json(w / "gen" / "image_notlist.json", {"captions": records})
    (w / "gen" / "image_deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (w / "gen" / "image_latin1.json").write_bytes('[{"images": ["x.jpg"], "caption": "vase à figures"}]'
                                                 .encode("latin-1"))

    # data sets for explore / filter / augment / convert
    write_jsonl(w / "dj.jsonl", [
        {"text": "a black figure vase with two warriors fighting", "images": ["img/good1.jpg"]},
        {"text": "a red figure amphora with a chariot and horses", "images": ["img/bomb.png"]}])
    (w / "dj_bom.jsonl").write_bytes(b"\xef\xbb\xbf" + (w / "dj.jsonl").read_bytes())
    (w / "dj_malformed.jsonl").write_text('{"text": "fine", "images": []}\n{"text": oops}\n')
    (w / "dj_empty.jsonl").write_text("")
    recipes = {
        "ok": "process:\n  - image_shape_filter:\n      min_width: 10\n",
        "aliases": "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: [*b, *b, *b, *b, *b, *b, *b, *b]\nprocess:\n  - text_length_filter:\n",
        "duplicate": "process:\n  - word_repetition_filter:\n      max_ratio: 0.5\n      max_ratio: 0.9\n",
        "nan": "process:\n  - word_repetition_filter:\n      max_ratio: .nan\n",
        "inf": "process:\n  - words_num_filter:\n      max_num: .inf\n",
        "wrongtype": "process:\n  - words_num_filter:\n      min_num: ten\n",
        "long": "process:\n  - words_num_filter:\n      min_num: '" + "x" * 5000 + "'\n",
        "unknown_op": "process:\n  - no_such_filter:\n",
        "malformed": "process:\n  - words_num_filter: {min_num: 3\n",
        "not_mapping": "- words_num_filter\n",
        "python_tag": "process: !!python/object/apply:os.system ['true']\n",
    }
    for name, text in recipes.items():
        (w / "recipes" / f"{name}.yaml").parent.mkdir(exist_ok=True)
        (w / "recipes" / f"{name}.yaml").write_text(text)
    write_json(w / "captions_outside.json", [{"image": "img/good1.jpg", "caption": "a vase"},
                                             {"image": "../../../../etc/passwd", "caption": "a secret"}])
    write_json(w / "captions_bomb.json", [{"image": "img/good1.jpg", "caption": "a vase"},
                                          {"image": "img/bomb.png", "caption": "a big vase"}])
    (w / "captions_bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([{"image": "img/good1.jpg",
                                                                        "caption": "a vase"}]).encode())
    write_json(w / "llava_outside.json", [{"id": "x1", "image": "/etc/hostname",
                                           "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                                             {"from": "gpt", "value": "A host."}]}])
    write_jsonl(w / "train_bomb.jsonl", [caption_sample("good_1", ["img/good1.jpg"], "a vase").to_json(),
                                         caption_sample("bomb_2", ["img/bomb.png"], "a big vase").to_json()])
    good = caption_sample("good_1", ["img/good1.jpg"], "a vase").to_json()
    write_jsonl(w / "train_good.jsonl", [good])
    (w / "train_bom.jsonl").write_bytes(b"\xef\xbb\xbf" + (w / "train_good.jsonl").read_bytes())
    (w / "train_malformed.jsonl").write_text(json.dumps(good) + "\n{oops\n")
    return w


def _textured_glb(path: Path, texture_size: tuple[int, int] | None = None) -> Path:
    """A textured box as GLB; `texture_size` patches the embedded PNG's header to claim that many pixels (a
    decompression bomb of 45 bytes' worth of header, as in tests.fixtures.bad_files.bomb_png)."""
    import struct
    import zlib

    import numpy as np
    import trimesh
    from PIL import Image

    box = trimesh.creation.box()
    uv = np.random.default_rng(0).random((len(box.vertices), 2))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.new("RGB", (8, 8), (200, 60, 20)))
    data = bytearray(box.export(file_type="glb"))
    if texture_size is not None:
        at = data.index(b"IHDR")
        data[at + 4:at + 12] = struct.pack(">II", *texture_size)
        data[at + 17:at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at:at + 17])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def commands(world: Path, tiny_clip_words_dir: Path, tiny_qwen2_5_vl_dir: Path, tiny_clip_dir: Path,
             tiny_qwen2_lm_dir: Path) -> dict[str, str]:
    """The inputs of the commands added since the first matrix (retrieval, VQA, render, downloads), in `world`."""
    import socket

    from safetensors.numpy import save_file

    from demo.tiny.word_clip import make_shape_pairs
    from vlmkit.training.compat import model_weight_files, tensor_shapes

    w = world
    shapes = make_shape_pairs(w / "shapes", n=16)
    write_jsonl(w / "one_image.jsonl", [{"query": "a red circle", "positive": "images/shape_000.png"},
                                        {"query": "the red circle", "positive": "images/shape_000.png"}])
    shutil.copy(w / "one_image.jsonl", shapes / "one_image.jsonl")
    cfg = w / "rcfg"
    cfg.mkdir()
    base = f"model_name_or_path: {tiny_clip_words_dir}\ndata_path: {shapes / 'train.jsonl'}\neval_strategy: 'no'\n"
    (cfg / "ok.yaml").write_text(base + "output_dir: unused\n")
    (cfg / "duplicate.yaml").write_text(base + f"model_name_or_path: {tiny_clip_words_dir}\noutput_dir: unused\n")
    (cfg / "alias.yaml").write_text(base + "output_dir: unused\nlora_target_modules: &a [q_proj, q_proj, q_proj, "
                                    "q_proj, q_proj, q_proj, q_proj, q_proj, q_proj]\nmrl_dims: *a\n")
    (cfg / "python_tag.yaml").write_text(base + "output_dir: !!python/object/apply:os.system ['true']\n")
    # an index of the 16 shapes (the tiny word-level CLIP), and broken copies of it
    assert retrieval.main(["index", "--model", str(tiny_clip_words_dir), "--images", str(shapes / "images"),
                           "--output", str(w / "rindex")]) == 0
    for name in ("rindex_truncated", "rindex_garbage", "rindex_old_truncated", "rindex_nprobe0"):
        shutil.copytree(w / "rindex", w / name)
    blob = (w / "rindex" / "index.faiss").read_bytes()
    (w / "rindex_truncated" / "index.faiss").write_bytes(blob[: len(blob) // 2])
    (w / "rindex_garbage" / "index.faiss").write_bytes(b"XXXX" + blob[4:])
    meta = json.loads((w / "rindex" / "index.json").read_text())
    write_json(w / "rindex_old_truncated" / "index.json", {k: v for k, v in meta.items() if k != "index_bytes"})
    (w / "rindex_old_truncated" / "index.faiss").write_bytes(blob[: len(blob) // 2])
    write_json(w / "rindex_nprobe0" / "index.json", {**meta, "nprobe": 0})
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    # VQA: a TextVQA set, a question that is a number, predictions (one for a question the file does not have)
    annotations, _ = write_textvqa(w / "textvqa", n=6)
    data = json.loads(annotations.read_text())
    write_json(w / "textvqa_number.json", {**data, "data": [{**data["data"][0], "question": 42}, *data["data"][1:]]})
    write_jsonl(w / "answers.jsonl", [{"question_id": 100 + i, "answer": "adidas"} for i in range(6)])
    write_jsonl(w / "answers_unknown.jsonl", [{"question_id": 100 + i, "answer": "adidas"} for i in range(6)]
                + [{"question_id": 999, "answer": "nike"}])
    vqa_args = ["--task", "textvqa", "--annotations", str(annotations), "--score_only"]
    assert eval_vqa.main([*vqa_args, "--predictions", str(w / "answers.jsonl"), "--output_dir",
                          str(w / "vqa_a")]) == 0
    write_jsonl(w / "questions.jsonl", [{"question_id": i, "image": "x.jpg", "question": "what?", "answers": ["a"]}
                                        for i in range(3)])
    write_jsonl(w / "answers_vqa.jsonl", [{"question_id": i, "answer": "a"} for i in range(3)])
    assert eval_vqa.main(["--task", "vqa", "--questions", str(w / "questions.jsonl"), "--score_only",
                          "--predictions", str(w / "answers_vqa.jsonl"), "--output_dir", str(w / "vqa_b")]) == 0
    shutil.copytree(w / "vqa_a", w / "vqa_claims_mmbench")
    results = json.loads((w / "vqa_a" / "results.json").read_text())
    write_json(w / "vqa_claims_mmbench" / "results.json", {**results, "task": "mmbench"})
    # merge: LoRA adapters shaped for the tiny Qwen2.5-VL, put on bases they do not fit
    shapes_q = tensor_shapes(model_weight_files(tiny_qwen2_5_vl_dir))
    module = next(k for k in shapes_q if k.endswith("q_proj.weight"))
    out_f, in_f = shapes_q[module]
    import numpy as np

    def adapter(name: str, in_features: int, info: dict | None) -> None:
        folder = w / "adapters" / name
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps(
            {"peft_type": "LORA", "base_model_name_or_path": str(tiny_qwen2_5_vl_dir), "r": 4,
             "target_modules": ["q_proj"]}))
        stem = "base_model.model." + module.removesuffix(".weight")
        tensors = {stem + ".lora_A.weight": np.zeros((4, in_features), np.float32),
                   stem + ".lora_B.weight": np.zeros((out_f, 4), np.float32)}
        save_file(tensors, str(folder / "adapter_model.safetensors"))
        if info is not None:
            write_json(folder / "vlmkit_training.json", info)

    adapter("qwen_arch", in_f, {"format": "vlmkit-training/1", "arch": "qwen2_5_vl", "stage": "finetune",
                                "kind": "adapter", "base_model": str(tiny_qwen2_5_vl_dir)})
    adapter("llava_arch", in_f, {"format": "vlmkit-training/1", "arch": "llava", "stage": "finetune",
                                 "kind": "adapter", "base_model": str(tiny_qwen2_5_vl_dir)})
    adapter("wrong_size", in_f + 8, None)
    # DeepSpeed configs (train recipes) with a key given twice, and with NaN
    (w / "ds_duplicate.json").write_text('{"train_batch_size": "auto", "zero_optimization": {"stage": 2, "stage": 3}}')
    (w / "ds_nan.json").write_text('{"train_batch_size": "auto", "gradient_clipping": NaN}')
    # render: a GLB whose texture claims 20000 x 20000 pixels, and a good one
    _textured_glb(w / "glb_bomb" / "bomb_1.glb", (20000, 20000))
    _textured_glb(w / "glb_bomb" / "good_2.glb")
    # download_models.py --check: a language model folder whose tokenizer.json is garbage
    lm = w / "dl_models" / "Qwen2.5-3B-Instruct"
    shutil.copytree(tiny_qwen2_lm_dir, lm)
    (lm / "tokenizer.json").write_text("{garbage")
    yield {"clipw": str(tiny_clip_words_dir), "clip": str(tiny_clip_dir), "busy_port": str(busy.getsockname()[1]),
           "latin1": "red \udce9 circle"}
    busy.close()


def _pre_existing(cli: str, out: Path) -> None:
    """The output of an earlier run, in the place each CLI writes to."""
    if cli in ("qwen", "internvl", "caption"):
        write_json(out / "captions" / "image_x.json", [PREVIOUS])
    elif cli == "augment":
        write_jsonl(out / "aug.jsonl", [PREVIOUS_SAMPLE])
    elif cli == "compare":
        (out / "results").mkdir(parents=True)
        (out / "results" / "model_comparison_table.md").write_text("an earlier table\n")
    elif cli == "explore":
        write_json(out / "explore" / "explore.json", {"earlier": True})
    elif cli == "filter":
        write_jsonl(out / "filtered" / "kept.jsonl", [{"text": "earlier"}])
    elif cli == "convert":
        write_jsonl(out / "train.jsonl", [PREVIOUS_SAMPLE])
    elif cli == "merge":
        (out / "merged").mkdir(parents=True)
        (out / "merged" / "config.json").write_text("{}\n")
    elif cli == "train":
        (out / "run").mkdir(parents=True)
        (out / "run" / "earlier.txt").write_text("an earlier run\n")
    elif cli in NEW_CLIS:
        (out / "earlier").mkdir(parents=True)
        (out / "earlier" / "result.json").write_text('{"earlier": true}\n')
    (out / "a_file").write_text("a file, not a folder\n")
    (out / "a_folder.jsonl").mkdir()
    (out / "a_folder.json").mkdir()


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@dataclass(frozen=True)
class Case:
    cli: str
    argv: str  # formatted with W (the world), OUT (this case's output folder), qwen, internvl, clip
    code: int
    message: str  # in the one error line (exit 2), or in the listing file (exit 0/1)
    listed_in: str | None = None  # where an exit 0/1 case lists its bad item
    id: str = ""


CASES = [
    # ---- qwen.py: bad images are per-item failures (or skipped views), listed in the report ----------------
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat_bomb " + QWEN, 1, "too large image",
         "{OUT}/captions/x_caption_generation_report.json", "bomb image"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat_truncated " + QWEN, 1, "truncated image",
         "{OUT}/captions/x_caption_generation_report.json", "truncated image"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat_empty " + QWEN, 1, "empty image",
         "{OUT}/captions/x_caption_generation_report.json", "empty image"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat_text " + QWEN, 1, "unreadable image",
         "{OUT}/captions/x_caption_generation_report.json", "non-image file"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/mv_badview --views front,back " + QWEN, 0, "too large image",
         "{OUT}/captions/x_caption_generation_report.json", "one bad view is skipped"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/mv_allbad --views front,back " + QWEN, 1, "no usable image",
         "{OUT}/captions/x_caption_generation_report.json", "every view bad"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat --max_image_pixels 100 " + QWEN, 1, "> limit 100",
         "{OUT}/captions/x_caption_generation_report.json", "pixel limit flag"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat --prompt_file {W}/prompt_bom.txt " + QWEN, 0,
         '"prompt_template": "Describe the vase."', "{OUT}/captions/x_caption_generation_report.json",
         "prompt file with BOM"),
    # ---- qwen.py: bad settings, model folders, outputs: one line, exit 2, nothing written --------------------
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat --max_image_pixels -1 " + QWEN, 2,
         "--max_image_pixels -1: must be >= 0", id="negative pixel limit"),
    Case("qwen", "--model_path {W}/models/only_config --input_dir {W}/flat " + QWEN, 2,
         "only_config: model folder has no weight files", id="model folder with only config.json"),
    Case("qwen", "--model_path {W}/models/bad_config --input_dir {W}/flat " + QWEN, 2,
         "bad_config/config.json: malformed JSON", id="malformed config.json"),
    Case("qwen", "--model_path {W}/models/truncated --input_dir {W}/flat " + QWEN, 2,
         "truncated/model.safetensors: truncated or corrupt safetensors", id="truncated safetensors"),
    Case("qwen", "--model_path {W}/models/empty_weights --input_dir {W}/flat " + QWEN, 2,
         "empty_weights/model.safetensors: empty weight file (0 bytes)", id="0-byte safetensors"),
    Case("qwen", "--model_path {W}/models/missing_shard --input_dir {W}/flat " + QWEN, 2,
         "model.safetensors.index.json: shard model-00001-of-00002.safetensors is missing", id="missing shard"),
    Case("qwen", "--model_path {W}/models/no_config --input_dir {W}/flat " + QWEN, 2, "no_config: not a model folder",
         id="folder without config.json"),
    Case("qwen", "--model_path {W}/models/nowhere --input_dir {W}/flat " + QWEN, 2, "nowhere: model folder not found",
         id="missing model folder"),
    Case("qwen", "--model_path {qwen} --adapter_path {W}/adapters/bad_json --input_dir {W}/flat " + QWEN, 2,
         "bad_json/adapter_config.json: malformed JSON", id="malformed adapter_config.json"),
    Case("qwen", "--model_path {qwen} --adapter_path {W}/adapters/list_json --input_dir {W}/flat " + QWEN, 2,
         "list_json/adapter_config.json: adapter_config.json must be a JSON object", id="adapter config a list"),
    Case("qwen", "--model_path {qwen} --adapter_path {W}/adapters/no_peft_type --input_dir {W}/flat " + QWEN, 2,
         "no 'peft_type'", id="adapter config without peft_type"),
    Case("qwen", "--model_path {qwen} --adapter_path {W}/adapters/truncated --input_dir {W}/flat " + QWEN, 2,
         "truncated/adapter_model.safetensors: truncated or corrupt", id="truncated adapter weights"),
    Case("qwen", "--model_path {qwen} --adapter_path {W}/adapters/no_weights --input_dir {W}/flat " + QWEN, 2,
         "no_weights: adapter has no weights", id="adapter without weights"),
    Case("qwen", "--model_path {W}/adapters/bad_json --input_dir {W}/flat " + QWEN, 2,
         "bad_json/adapter_config.json: malformed JSON", id="malformed adapter as --model_path"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat " + QWEN.replace("{OUT}/captions", "{OUT}/a_file"), 2,
         "a_file: the folder of --output_dir/--output_name is a file", id="output folder is a file"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat " + QWEN.replace("{OUT}/captions", "/proc/vlmkit-out"), 2,
         "not writable", id="output folder not writable"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat " + QWEN.replace("image_x.json", "a_folder.json")
         .replace("{OUT}/captions", "{OUT}"), 2, "a_folder.json: --output_dir/--output_name is a folder",
         id="output name is a folder"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/nowhere " + QWEN, 2, "nowhere: input folder not found",
         id="missing input folder"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/empty_dir " + QWEN, 2, "empty_dir: no object folders or images",
         id="empty input folder"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat --prompt_file {W}/nowhere.txt " + QWEN, 2,
         "nowhere.txt", id="missing prompt file"),
    Case("qwen", "--model_path {qwen} --input_dir {W}/flat --batch_size 0 " + QWEN, 2, "--batch_size 0",
         id="batch size 0"),
    Case("qwen", "--model_path {qwen} --merge " + MERGE_SHARDS, 2, "no shard files", id="merge without shards"),
    Case("qwen", "--model_path {qwen} --merge " + MERGE_SHARDS.replace("{OUT}/captions", "{OUT}/a_file"), 2,
         "a_file: the folder of --output_dir/--output_name is a file", id="merge into a file"),
    # ---- internvl.py --backend hf and caption.py: the same engine, the same policy ---------------------------
    Case("internvl", "--backend hf --device cpu --model_path {internvl} --input_dir {W}/flat_bomb " + GEN, 1,
         "too large image", "{OUT}/captions/x_caption_generation_report.json", "internvl bomb"),
    Case("internvl", "--backend hf --model_path {W}/models/only_config --input_dir {W}/flat " + GEN, 2,
         "has no weight files", id="internvl only config.json"),
    Case("internvl", "--model_path {W}/models/bad_config --input_dir {W}/flat " + GEN, 2,
         "bad_config/config.json: malformed JSON", id="internvl auto backend malformed config"),
    Case("internvl", "--backend hf --model_path {W}/models/truncated --input_dir {W}/flat " + GEN, 2,
         "truncated or corrupt safetensors", id="internvl truncated safetensors"),
    Case("caption", "--model_path {qwen} --input_dir {W}/flat_truncated " + GEN, 1, "truncated image",
         "{OUT}/captions/x_caption_generation_report.json", "caption truncated image"),
    Case("caption", "--model_path {W}/models/truncated --input_dir {W}/flat " + GEN, 2,
         "truncated or corrupt safetensors", id="caption truncated safetensors"),
    Case("caption", "--model_path {qwen} --adapter_path {W}/adapters/bad_json --input_dir {W}/flat " + GEN, 2,
         "adapter_config.json: malformed JSON", id="caption malformed adapter"),
    Case("caption", "--model_path {qwen} --input_dir {W}/flat " + GEN.replace("{OUT}/captions", "{OUT}/a_file"), 2,
         "is a file", id="caption output folder is a file"),
    # ---- compare.py --------------------------------------------------------------------------------------------
    Case("compare", "--generated {W}/gen/image_malformed.json " + COMPARE, 2, "image_malformed.json: malformed JSON",
         id="malformed generated file"),
    Case("compare", "--generated {W}/gen/image_bom.json " + COMPARE, 0, '"lexical_similarity"',
         "{OUT}/results/compare_good.json", "generated file with BOM is read"),
    Case("compare", "--generated {W}/gen/image_empty.json " + COMPARE, 2, "image_empty.json: item 0",
         id="empty caption"),
    Case("compare", "--generated {W}/gen/image_wrongtype.json " + COMPARE, 2, "'caption' must be a string",
         id="caption of the wrong type"),
    Case("compare", "--generated {W}/gen/image_notlist.json " + COMPARE, 2, "image_notlist.json",
         id="generated file not a list"),
    Case("compare", "--generated {W}/gen/image_deep.json " + COMPARE, 2, "image_deep.json: JSON nested too deeply",
         id="deeply nested JSON"),
    Case("compare", "--generated {W}/gen/image_latin1.json " + COMPARE, 2, "image_latin1.json: cannot read",
         id="generated file not UTF-8"),
    Case("compare", "--generated {W}/gen/image_good.json " + COMPARE.replace("{W}/gt.json", "{W}/nowhere.json"), 2,
         "nowhere.json", id="missing ground truth"),
    Case("compare", "--generated {W}/gen/image_good.json " + COMPARE.replace("{OUT}/results", "{OUT}/a_file"), 2,
         "a_file: --output_dir is a file", id="compare output folder is a file"),
    Case("compare", "--generated {W}/gen/image_good.json --output {OUT}/a_folder.jsonl " + COMPARE, 2,
         "a_folder.jsonl: --output is a folder", id="compare --output is a folder"),
    Case("compare", "--generated {W}/gen/image_good.json " + COMPARE.replace("{OUT}/results", "/proc/vlmkit-out"), 2,
         "not writable", id="compare output not writable"),
    Case("compare", "--generated {W}/gen/image_good.json --images_dir {W}/mv_badview --clip_model {clip} "
         + COMPARE.replace("--clip_model none --metrics lexical", "--metrics clip_image"), 2,
         "front.png: too large image", id="render too large for CLIP image metrics"),
    Case("compare", "--generated {W}/gen/image_good.json --images_dir {W}/mv_truncated --clip_model {clip} "
         + COMPARE.replace("--clip_model none --metrics lexical", "--metrics clip_image"), 2,
         "back.jpg: truncated image", id="truncated render for CLIP image metrics"),
    Case("compare", "--generated {W}/gen/image_good.json --max_image_pixels -5 " + COMPARE, 2,
         "--max_image_pixels -5", id="compare negative pixel limit"),
    # ---- dataprocess.explore -----------------------------------------------------------------------------------
    Case("explore", "--input {W}/dj.jsonl --output_dir {OUT}/explore --np 1", 0, '"kind": "too large"',
         "{OUT}/explore/explore.json", "explore counts a bomb"),
    Case("explore", "--input {W}/dj_bom.jsonl --output_dir {OUT}/explore --np 1", 0, '"samples": 2',
         "{OUT}/explore/explore.json", "explore reads a BOM"),
    Case("explore", "--input {W}/dj.jsonl --output_dir {OUT}/a_file --np 1", 2, "a_file: --output_dir is a file",
         id="explore output is a file"),
    Case("explore", "--input {W}/dj.jsonl --output_dir /proc/vlmkit-out --np 1", 2, "not writable",
         id="explore output not writable"),
    Case("explore", "--input {W}/dj_malformed.jsonl --output_dir {OUT}/explore --np 1", 2,
         "dj_malformed.jsonl: line 2: malformed JSON", id="explore malformed JSONL"),
    Case("explore", "--input {W}/dj_empty.jsonl --output_dir {OUT}/explore --np 1", 2, "dj_empty.jsonl: empty file",
         id="explore empty input"),
    Case("explore", "--input {W}/dj.jsonl --output_dir {OUT}/explore --recipe {W}/recipes/aliases.yaml", 2,
         "anchor &a is not allowed", id="explore recipe with aliases"),
    # ---- dataprocess.filter: recipes ---------------------------------------------------------------------------
    Case("filter", "--recipe {W}/recipes/aliases.yaml " + FILTER, 2, "aliases.yaml: line 1 column 4: YAML anchor &a",
         id="recipe with aliases"),
    Case("filter", "--recipe {W}/recipes/duplicate.yaml " + FILTER, 2,
         "process item 0 (word_repetition_filter): parameter 'max_ratio' given twice", id="duplicate parameter"),
    Case("filter", "--recipe {W}/recipes/nan.yaml " + FILTER, 2,
         "process item 0 (word_repetition_filter): 'max_ratio' must be a finite number, got nan", id="NaN parameter"),
    Case("filter", "--recipe {W}/recipes/inf.yaml " + FILTER, 2, "'max_num' must be a finite number, got inf",
         id="infinite parameter"),
    Case("filter", "--recipe {W}/recipes/wrongtype.yaml " + FILTER, 2,
         "process item 0 (words_num_filter): 'min_num' must be a number, got 'ten'", id="wrong-typed parameter"),
    Case("filter", "--recipe {W}/recipes/long.yaml " + FILTER, 2, "'min_num' must be a number, got 'xxx",
         id="long value quoted short"),
    Case("filter", "--recipe {W}/recipes/unknown_op.yaml " + FILTER, 2, "unsupported operator 'no_such_filter'",
         id="unknown operator"),
    Case("filter", "--recipe {W}/recipes/malformed.yaml " + FILTER, 2, "malformed.yaml: malformed YAML",
         id="malformed YAML"),
    Case("filter", "--recipe {W}/recipes/not_mapping.yaml " + FILTER, 2, "expected a YAML mapping",
         id="recipe not a mapping"),
    Case("filter", "--recipe {W}/recipes/python_tag.yaml " + FILTER, 2, "python_tag.yaml: malformed YAML",
         id="recipe with a Python tag"),
    Case("filter", "--recipe {W}/recipes/ok.yaml " + FILTER, 0, '"image_problem": "too large"',
         "{OUT}/filtered/kept_dropped.jsonl", "filter drops a bomb, listed"),
    Case("filter", "--recipe {W}/recipes/ok.yaml " + FILTER.replace("{OUT}/filtered/kept.jsonl",
                                                                     "{OUT}/a_folder.jsonl"), 2,
         "a_folder.jsonl: output path is a folder", id="export path is a folder"),
    Case("filter", "--recipe {W}/recipes/ok.yaml " + FILTER.replace("{OUT}/filtered", "/proc/vlmkit-out"), 2,
         "not writable", id="export folder not writable"),
    Case("filter", "--recipe {W}/recipes/ok.yaml " + FILTER.replace("{OUT}/filtered", "{OUT}/a_file"), 2,
         "a_file", id="export folder is a file"),
    # ---- dataprocess.convert -----------------------------------------------------------------------------------
    Case("convert", "--captions {W}/captions_outside.json --output {OUT}/train.jsonl", 2,
         "captions_outside.json: sample 1 (id passwd): image /etc/passwd is outside the image folder",
         id="image path outside the data folder"),
    Case("convert", "--captions {W}/captions_outside.json --output {OUT}/train.jsonl --allow_outside_paths", 2,
         "sample 1 (id passwd): bad image: /etc/passwd: unreadable image", id="allowed outside path, not an image"),
    Case("convert", "--llava {W}/llava_outside.json --llava_image_folder {W}/img --output {OUT}/train.jsonl", 2,
         "llava_outside.json: sample 0 (id x1): image /etc/hostname is outside", id="absolute path outside"),
    Case("convert", "--captions {W}/captions_bom.json --output {OUT}/train.jsonl", 0, '"samples_read": 1',
         "{OUT}/train_summary.json", "convert reads a BOM"),
    Case("convert", "--captions {W}/captions_bomb.json --output {OUT}/train.jsonl", 2,
         "captions_bomb.json: sample 1 (id bomb): bad image: ", id="convert bomb"),
    Case("convert", "--captions {W}/captions_bomb.json --output {OUT}/train.jsonl --skip_missing_images", 0,
         "too large image", "{OUT}/train_dropped.jsonl", "convert drops a bomb, listed"),
    Case("convert", "--captions {W}/captions_bom.json --output {OUT}/a_folder.jsonl", 2,
         "a_folder.jsonl: output path is a folder", id="convert output is a folder"),
    Case("convert", "--captions {W}/gen/image_malformed.json --output {OUT}/train.jsonl", 2, "malformed JSON",
         id="convert malformed JSON"),
    Case("convert", "--captions {W}/captions_bom.json --output /proc/vlmkit-out/train.jsonl", 2, "not writable",
         id="convert output not writable"),
    # ---- dataprocess.augment -----------------------------------------------------------------------------------
    Case("augment", "--input {W}/train_bomb.jsonl --output {OUT}/aug.jsonl --model_path {qwen} --resume "
         "--no_progress --max_new_tokens 2", 1, "too large image", "{OUT}/aug.report.json", "augment bomb"),
    Case("augment", "--input {W}/train_bomb.jsonl --output {OUT}/aug.jsonl --model_path {W}/models/only_config", 2,
         "has no weight files", id="augment model with only config.json"),
    Case("augment", "--input {W}/train_bomb.jsonl --output {OUT}/aug.jsonl --model_path {qwen} "
         "--adapter_path {W}/adapters/truncated", 2, "adapter_model.safetensors: truncated or corrupt",
         id="augment truncated adapter"),
    Case("augment", "--input {W}/train_bomb.jsonl --output {OUT}/a_folder.jsonl --model_path {qwen}", 2,
         "a_folder.jsonl: --output is a folder", id="augment output is a folder"),
    Case("augment", "--input {W}/train_malformed.jsonl --output {OUT}/aug.jsonl --model_path {qwen}", 2,
         "train_malformed.jsonl: line 2: malformed JSON", id="augment malformed input"),
    # ---- merge_lora_weights.py ---------------------------------------------------------------------------------
    Case("merge", "--adapter {W}/adapters/bad_json " + MERGE, 2, "bad_json/adapter_config.json: malformed JSON",
         id="merge malformed adapter_config.json"),
    Case("merge", "--adapter {W}/adapters/truncated " + MERGE, 2, "adapter_model.safetensors: truncated or corrupt",
         id="merge truncated adapter"),
    Case("merge", "--adapter {W}/adapters/no_weights " + MERGE, 2, "adapter has no weights",
         id="merge adapter without weights"),
    Case("merge", "--adapter {W}/adapters/truncated_base " + MERGE, 2,
         "truncated/model.safetensors: truncated or corrupt", id="merge onto a truncated base"),
    Case("merge", "--adapter {W}/adapters/base_gone " + MERGE, 2, "recorded base model", id="merge base moved"),
    Case("merge", "--adapter {W}/adapters/projector " + MERGE, 2, "projector.safetensors: truncated or corrupt",
         id="merge truncated projector"),
    Case("merge", "--adapter {W}/adapters/nowhere " + MERGE, 2, "nowhere: neither a LoRA adapter",
         id="merge missing adapter"),
    Case("merge", "--adapter {W}/adapters/truncated --output_dir {OUT}/a_file", 2, "a_file: --output_dir is a file",
         id="merge output is a file"),
    # ---- train.py ------------------------------------------------------------------------------------------------
    Case("train", "--data {W}/gen/image_malformed.json --image_folder {W}/mv --output_dir {OUT}/run "
         "--base_model {qwen} --arch qwen2_5_vl", 2, "image_malformed.json: malformed JSON", id="train malformed data"),
    Case("train", "--data {W}/nowhere.jsonl --output_dir {OUT}/run --base_model {qwen} --arch qwen2_5_vl", 2,
         "nowhere.jsonl", id="train missing data"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run --vision_model {W}/models/nowhere "
         "--lm_model {qwen}", 2, "nowhere", id="train missing vision model"),
    Case("train", "--data {W}/train_bomb.jsonl --output_dir {OUT}/run --base_model {qwen} --arch qwen2_5_vl", 2,
         "train_bomb.jsonl: sample bomb_2: image ", id="train bomb image"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/a_file --base_model {qwen} --arch qwen2_5_vl", 2,
         "a_file", id="train output is a file"),
    Case("train", "--data {W}/train_good.jsonl --output_dir /proc/vlmkit-run --base_model {qwen} --arch qwen2_5_vl",
         2, "/proc", id="train output not writable"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run --base_model {W}/models/only_config "
         "--arch qwen2_5_vl", 2, "only_config", id="train base with only config.json"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run --base_model {W}/models/bad_config "
         "--arch qwen2_5_vl", 2, "bad_config", id="train base with malformed config"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run --base_model {W}/models/truncated "
         "--arch qwen2_5_vl", 2, "truncated", id="train base with truncated weights"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run --base_model {qwen} --arch qwen2_5_vl "
         "--report_to nosuchtracker", 2, "nosuchtracker", id="train unknown report_to"),
    # ---- retrieval.py train: the config (safe YAML, types, finite numbers, declared ranges) -------------------
    Case("retrieval", RTRAIN + " learning_rate=.nan", 2, "learning_rate must be a finite number, got nan",
         id="train learning rate .nan"),
    Case("retrieval", RTRAIN + " learning_rate=nan", 2, "learning_rate must be a finite number, got nan",
         id="train learning rate nan"),
    Case("retrieval", RTRAIN + " learning_rate=inf", 2, "learning_rate must be a finite number, got inf",
         id="train learning rate inf"),
    Case("retrieval", RTRAIN + " weight_decay=nan", 2, "weight_decay must be a finite number, got nan",
         id="train weight decay nan"),
    Case("retrieval", RTRAIN + " max_grad_norm=nan", 2, "max_grad_norm must be a finite number, got nan",
         id="train clipping norm nan"),
    Case("retrieval", RTRAIN + " epochs=inf", 2, "epochs must be a finite number, got inf", id="train epochs inf"),
    Case("retrieval", RTRAIN + " dataloader_num_workers=-1", 2, "dataloader_num_workers must be in [0, 256], got -1",
         id="train negative workers"),
    Case("retrieval", RTRAIN + " seed=-5", 2, "seed must be in [0, 4294967295], got -5", id="train negative seed"),
    Case("retrieval", RTRAIN + " seed=1.5", 2, "seed=1.5 is not a valid int", id="train fractional seed"),
    Case("retrieval", RTRAIN + " report_to=bogus_tracker", 2, "report_to bogus_tracker: choose none",
         id="train unknown tracker"),
    Case("retrieval", RTRAIN + " lora_dropout=1.5", 2, "lora_dropout must be in [0, 1), got 1.5",
         id="train dropout out of range"),
    Case("retrieval", RTRAIN.replace("ok.yaml", "duplicate.yaml"), 2,
         "duplicate.yaml: line 4: key 'model_name_or_path' given twice (first at line 1)", id="train duplicate key"),
    Case("retrieval", RTRAIN.replace("ok.yaml", "alias.yaml"), 2, "alias.yaml: line 5 column 22: YAML anchor &a is "
         "not allowed", id="train YAML alias list"),
    Case("retrieval", RTRAIN.replace("ok.yaml", "python_tag.yaml"), 2, "python_tag.yaml: malformed YAML",
         id="train YAML Python tag"),
    Case("retrieval", RTRAIN + " lora_target_modules=*a", 2, "YAML alias *a is not allowed",
         id="train alias in an override"),
    # ---- retrieval.py eval / index / search / serve: numeric flags, engine errors --------------------------------
    Case("retrieval", REVAL + " --batch_size -3", 2, "--batch_size -3: must be >= 1", id="eval negative batch"),
    Case("retrieval", REVAL + " --batch_size 0", 2, "--batch_size 0: must be >= 1", id="eval batch size 0"),
    Case("retrieval", REVAL + " --bootstrap -1", 2, "--bootstrap -1: must be >= 0", id="eval negative bootstrap"),
    Case("retrieval", REVAL.replace("val.jsonl", "one_image.jsonl"), 2, "the pool holds 1 image",
         id="eval pool of one image"),
    Case("retrieval", RINDEX + " --index_type ivf --nprobe 0", 2, "--nprobe 0: must be >= 1", id="index nprobe 0"),
    Case("retrieval", RINDEX + " --index_type ivf --nlist 4 --nprobe 9", 2,
         "--nprobe 9: must be in 1..4 (the number of IVF cells", id="index nprobe over nlist"),
    Case("retrieval", RINDEX + " --index_type IVF99999,Flat", 2,
         "IVF99999,Flat has 99999 cells but there are only 16 images", id="index more cells than images"),
    Case("retrieval", RINDEX + " --index_type ivf --nlist 40", 2, "--nlist 40: must be in 1..16",
         id="index nlist over the images"),
    Case("retrieval", RINDEX + " --index_type IVF4,PQ7", 2, "should be a multiple of the number of subquantizers",
         id="index PQ not dividing"),
    Case("retrieval", RINDEX + " --resume --overwrite", 2, "--resume and --overwrite exclude each other",
         id="index resume with overwrite"),
    Case("retrieval", "search --index {W}/rindex_truncated --query 'a red circle'", 2,
         "rindex_truncated/index.faiss: ", id="search truncated index"),
    Case("retrieval", "search --index {W}/rindex_old_truncated --query 'a red circle'", 2,
         "rindex_old_truncated/index.faiss: FAISS cannot read it", id="search truncated index without its size"),
    Case("retrieval", "search --index {W}/rindex_garbage --query 'a red circle'", 2,
         "rindex_garbage/index.faiss: not a FAISS index file", id="search garbage index"),
    Case("retrieval", "search --index {W}/rindex_nprobe0 --query 'a red circle'", 2,
         "nprobe must be a positive integer, got 0", id="search index.json with nprobe 0"),
    Case("retrieval", "search --index {W}/rindex --query '{latin1}'", 2,
         "--query: not UTF-8 text (byte 0xe9 at character 4)", id="search Latin-1 query byte"),
    Case("retrieval", "search --index {W}/rindex --query circle -k 0", 2, "-k 0: must be >= 1", id="search k 0"),
    Case("retrieval", RSERVE + " --max_top_k 0", 2, "--max_top_k 0: must be in [1, 10000]", id="serve max_top_k 0"),
    Case("retrieval", RSERVE + " --max_top_k -5", 2, "--max_top_k -5: must be in [1, 10000]",
         id="serve negative max_top_k"),
    Case("retrieval", RSERVE + " --max_top_k 5", 2, "--default_top_k 10: must be <= --max_top_k 5",
         id="serve default top_k over the maximum"),
    Case("retrieval", RSERVE + " --port {busy_port}", 2, "cannot listen: in use", id="serve port in use"),
    Case("retrieval", RSERVE + " --port 70000", 2, "--port 70000: must be in [1, 65535]", id="serve port range"),
    Case("retrieval", RSERVE + " --max_concurrency 0", 2, "--max_concurrency 0: must be >= 1",
         id="serve concurrency 0"),
    # ---- eval_vqa.py / compare_vqa.py -----------------------------------------------------------------------------
    Case("eval_vqa", VQA + " --predictions {W}/answers_unknown.jsonl --limit 3", 2,
         "answers_unknown.jsonl: question 999: not in", id="score_only --limit keeps the unknown-question check"),
    Case("eval_vqa", VQA.replace("textvqa/TextVQA_0.5.1_val.json", "textvqa_number.json")
         + " --predictions {W}/answers.jsonl", 2, "question 100: 'question' must be a non-empty string, got 42",
         id="TextVQA question that is a number"),
    Case("compare_vqa", "{W}/vqa_a {W}/vqa_a --bootstrap -1 --output_dir {OUT}/cmp", 2,
         "--bootstrap -1: must be >= 0", id="negative bootstrap"),
    Case("compare_vqa", "{W}/vqa_a {W}/vqa_b --output_dir {OUT}/cmp", 2,
         "results of different tasks cannot be compared", id="results of two tasks"),
    Case("compare_vqa", "{W}/vqa_claims_mmbench {W}/vqa_claims_mmbench --output_dir {OUT}/cmp", 2,
         "line 1: not a scored mmbench row", id="scored rows of another task"),
    # ---- merge_lora_weights.py: tolerances, a base of another architecture -----------------------------------------
    Case("merge", "--adapter {W}/adapters/qwen_arch --atol -1 --rtol -1 " + MERGE, 2, "--atol -1.0: must be >= 0",
         id="merge negative tolerance"),
    Case("merge", "--adapter {W}/adapters/qwen_arch --atol nan " + MERGE, 2, "--atol nan: must be a finite number",
         id="merge NaN tolerance"),
    Case("merge", "--adapter {W}/adapters/qwen_arch --base_model {clip} " + MERGE, 2,
         "not an image-text-to-text checkpoint", id="merge onto a model that is no VLM"),
    Case("merge", "--adapter {W}/adapters/llava_arch --base_model {qwen} " + MERGE, 2,
         "trained on a llava model, the base is a qwen2_5_vl checkpoint", id="merge onto another architecture"),
    Case("merge", "--adapter {W}/adapters/wrong_size " + MERGE, 2, "the LoRA input size is",
         id="merge onto a base of another size"),
    # ---- render.py, download_models.py ------------------------------------------------------------------------------
    Case("render", "--input {W}/glb_bomb --output_dir {OUT}/views --views front --size 32 --no_progress", 1,
         "texture image 0: too large image", "{OUT}/views/render_report.json", "texture claiming 20000x20000"),
    Case("download", "--check --load --model Qwen2.5-3B-Instruct --local_dir {W}/dl_models", 1,
         "tokenizer.json does not parse", "STDOUT", "garbage tokenizer.json is not loadable"),
    Case("download", "--model Qwen2.5-3B-Instruct --local_dir {OUT}/models --timeout 0", 2,
         "--timeout 0.0: must be in (0, 3600]", id="download timeout 0"),
    # ---- train.py: DeepSpeed configs as strict as the YAML ones; an input error after the preflight leaves nothing ---
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run2 --base_model {qwen} --arch qwen2_5_vl "
         "--deepspeed {W}/ds_duplicate.json", 2, "ds_duplicate.json: key 'stage' given twice",
         id="train DeepSpeed config with a duplicate key"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run2 --base_model {qwen} --arch qwen2_5_vl "
         "--deepspeed {W}/ds_nan.json", 2, "ds_nan.json: NaN is not a JSON number", id="train DeepSpeed config NaN"),
    Case("train", "--data {W}/train_good.jsonl --output_dir {OUT}/run2 --base_model {qwen} --arch qwen2_5_vl "
         "--lora_target no_such_layer", 2, "--lora_target 'no_such_layer' matches no linear layer",
         id="train bad lora_target leaves no preflight files"),
    Case("train", "--data {W}/train_good.jsonl --eval_data {W}/train_bomb.jsonl --output_dir {OUT}/run2 "
         "--base_model {qwen} --arch qwen2_5_vl", 2, "train_bomb.jsonl: sample bomb_2: image ",
         id="train bad eval data leaves no preflight files"),
]


def _case_id(case: Case) -> str:
    return f"{case.cli}: {case.id}"


def test_the_matrix_is_large_and_covers_every_cli() -> None:
    assert len(CASES) >= 140
    assert {c.cli for c in CASES} == set(MAINS)
    assert len({_case_id(c) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_bad_input(case: Case, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                   tiny_qwen2_5_vl_dir: Path, request: pytest.FixtureRequest) -> None:
    if case.cli == "render":
        from vlmkit.render.engine import platform_problem

        if platform_problem("osmesa"):
            pytest.skip(f"render needs OSMesa: {platform_problem('osmesa')}")
    out = tmp_path / "out"
    out.mkdir()
    _pre_existing(case.cli, out)
    subst = {"W": world, "OUT": out, "qwen": tiny_qwen2_5_vl_dir}
    for name, fixture in (("internvl", "tiny_internvl_dir"), ("clip", "tiny_clip_dir")):
        if "{" + name + "}" in case.argv:
            subst[name] = request.getfixturevalue(fixture)
    if case.cli in NEW_CLIS or any(k in case.argv for k in ("adapters/qwen_arch", "adapters/llava_arch", "wrong_size",
                                                         "{W}/ds_")):
        subst.update(request.getfixturevalue("commands"))
    argv = shlex.split(case.argv.format(**subst))
    before = snapshot(out)

    with pytest.raises(SystemExit) as exit_:
        run_main(MAINS[case.cli], argv)  # anything but SystemExit (a traceback) fails the test here
    captured = capsys.readouterr()
    err = captured.err
    code = exit_.value.code or 0
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err
    assert code == case.code, err[-2000:]
    if case.code == 2:
        assert len(error_lines) == 1, err[-2000:]
        assert case.message in error_lines[0]
        assert len(error_lines[0]) < 500  # values are quoted short, never the whole input
        assert snapshot(out) == before  # nothing written, nothing changed, no lock or staging file left
        return
    assert error_lines == [], err[-2000:]
    if case.listed_in == "STDOUT":
        assert case.message in captured.out
    else:
        listing = Path(case.listed_in.format(**subst))
        assert case.message in listing.read_text(encoding="utf-8")
    if case.cli in ("qwen", "internvl", "caption"):  # the earlier run's record is still there
        assert PREVIOUS in read_json(out / "captions" / "image_x.json")
    if case.cli == "augment":
        assert PREVIOUS_SAMPLE in read_jsonl(out / "aug.jsonl")
    assert not list(out.rglob("*.lock")) and not list(out.rglob(".vlmkit-commit-*"))
