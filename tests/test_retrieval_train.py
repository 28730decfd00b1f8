"""retrieval.py train + eval end to end on the tiny word-level CLIP and 64 synthetic shapes (fixture retrieval_run):
fine-tuning beats zero-shot, eval equals an independent argsort (and sentence-transformers' IR evaluator), the
merged folder equals the adapter and loads everywhere (compare.py included), outputs, resume, SigLIP."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import RETRIEVAL_TINY_OVERRIDES
from vlmkit.io import InputError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import retrieval  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    """{"0.t2i.R@1": 0.5, ...}: pytest.approx (9.x) compares flat mappings only, not nested data."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat: dict[str, object] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@pytest.fixture(scope="module")
def evaluation(retrieval_run: Path, tiny_clip_words_dir: Path, shape_pairs_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("retrieval_eval") / "eval.json"
    assert retrieval.main(["eval", "--model", str(retrieval_run / "merged"), "--data",
                           str(shape_pairs_dir / "val.jsonl"), "--zero_shot", str(tiny_clip_words_dir),
                           "--output", str(out), "--bootstrap", "200"]) == 0
    return json.loads(out.read_text())


def test_fine_tuning_beats_zero_shot(retrieval_run: Path, evaluation: dict) -> None:
    rows = read_jsonl(retrieval_run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(13)) and rows[0]["zero_shot"] and rows[0]["train_loss"] is None
    zero, last = rows[0]["t2i"], rows[-1]["t2i"]
    assert last["MRR"] >= zero["MRR"] + 0.25 and last["R@5"] >= zero["R@5"] + 0.4, (zero, last)
    # retrieval.py eval on the merged folder reproduces the last validation, and its zero-shot column the first
    for direction in ("t2i", "i2t"):
        for metric, value in rows[-1][direction].items():
            assert evaluation[direction][metric] == pytest.approx(value, abs=1e-9)
            assert evaluation["zero_shot"][direction][metric] == pytest.approx(rows[0][direction][metric], abs=1e-9)
    delta = evaluation["delta_points"]["t2i"]
    assert delta["MRR"]["delta"] == pytest.approx(100 * (last["MRR"] - zero["MRR"]))
    assert delta["MRR"]["ci95"][0] > 0  # the improvement is significant even on 16 queries
    losses = [r["train_loss"] for r in rows[1:]]
    assert losses[-1] < losses[0]


def hf_embeddings(folder: Path, texts: list[str], images: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings straight from transformers (no sentence-transformers, no vlmkit code)."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(str(folder)).eval()
    processor = CLIPProcessor.from_pretrained(str(folder))
    with torch.no_grad():
        t = model.get_text_features(**processor(text=texts, padding=True, return_tensors="pt")).pooler_output
        pixels = processor(images=[Image.open(p).convert("RGB") for p in images], return_tensors="pt")
        i = model.get_image_features(**pixels).pooler_output
    return (torch.nn.functional.normalize(t, dim=-1).numpy(), torch.nn.functional.normalize(i, dim=-1).numpy())


def t2i_per_query(folder: Path, shape_pairs_dir: Path) -> dict[str, np.ndarray]:
    """Per-query hits, reciprocal ranks and NDCG@10 from an independent argsort of transformers' embeddings."""
    pairs = read_jsonl(shape_pairs_dir / "val.jsonl")
    images = sorted({str(shape_pairs_dir / p["positive"]) for p in pairs})
    target = np.array([images.index(str(shape_pairs_dir / p["positive"])) for p in pairs])
    texts, imgs = hf_embeddings(folder, [p["query"] for p in pairs], images)
    scores = texts @ imgs.T
    ranks = np.array([int(np.flatnonzero(np.argsort(-scores[q]) == target[q])[0]) + 1 for q in range(len(pairs))])
    return {"R@1": (ranks <= 1) * 1.0, "R@5": (ranks <= 5) * 1.0, "R@10": (ranks <= 10) * 1.0, "MRR": 1 / ranks,
            "NDCG@10": np.array([1 / math.log2(r + 1) if r <= 10 else 0.0 for r in ranks])}


def test_the_zero_shot_delta_ci_is_the_paired_bootstrap_of_per_query_differences(
        retrieval_run: Path, tiny_clip_words_dir: Path, shape_pairs_dir: Path, evaluation: dict) -> None:
    """Each query resampled WITH its two scores (fine-tuned, zero-shot): the same seeded index matrix (200
    resamples, seed 0) over the per-query differences, percentile 95 %, in percentage points."""
    tuned = t2i_per_query(retrieval_run / "merged", shape_pairs_dir)
    zero = t2i_per_query(tiny_clip_words_dir, shape_pairs_dir)
    n = len(tuned["MRR"])
    index = np.random.default_rng(0).integers(0, n, size=(200, n))
    for metric in ("R@1", "R@5", "R@10", "MRR", "NDCG@10"):
        diff = tuned[metric] - zero[metric]
        expected = 100 * np.quantile(diff[index].mean(axis=1), [0.025, 0.975])
        delta = evaluation["delta_points"]["t2i"][metric]
        assert delta["delta"] == pytest.approx(100 * diff.mean(), abs=1e-7)
        assert delta["ci95"] == pytest.approx(expected.tolist(), abs=1e-7), metric
        own = 100 * np.quantile(tuned[metric][index].mean(axis=1), [0.025, 0.975])
        assert [100 * v for v in evaluation["ci95"]["t2i"][metric]] == pytest.approx(own.tolist(), abs=1e-7)


def test_eval_numbers_equal_an_independent_argsort(retrieval_run: Path, shape_pairs_dir: Path,
                                                   evaluation: dict) -> None:
    pairs = read_jsonl(shape_pairs_dir / "val.jsonl")
    images = sorted({str(shape_pairs_dir / p["positive"]) for p in pairs})
    target = np.array([images.index(str(shape_pairs_dir / p["positive"])) for p in pairs])
    texts, imgs = hf_embeddings(retrieval_run / "merged", [p["query"] for p in pairs], images)
    scores = texts @ imgs.T
    ranks = np.array([int(np.flatnonzero(np.argsort(-scores[q]) == target[q])[0]) + 1 for q in range(len(pairs))])
    expected = {"R@1": np.mean(ranks <= 1), "R@5": np.mean(ranks <= 5), "R@10": np.mean(ranks <= 10),
                "MRR": np.mean(1 / ranks), "NDCG@10": np.mean([1 / math.log2(r + 1) if r <= 10 else 0 for r in ranks])}
    assert evaluation["t2i"] == pytest.approx(expected, abs=1e-9)
    # image -> text: every caption of an image is relevant (here one caption per image)
    i2t_ranks = np.array([int(np.flatnonzero(np.isin(np.argsort(-scores[:, j]), np.flatnonzero(target == j)))[0]) + 1
                          for j in range(len(images))])
    assert evaluation["i2t"]["MRR"] == pytest.approx(np.mean(1 / i2t_ranks), abs=1e-9)
    assert evaluation["i2t"]["R@1"] == pytest.approx(np.mean(i2t_ranks <= 1), abs=1e-9)
    assert evaluation["pool"]["images"] == 16 and evaluation["pool"]["chance"]["t2i"]["R@1"] == pytest.approx(1 / 16)


def test_eval_of_the_adapter_folder_equals_eval_of_merged(retrieval_run: Path, shape_pairs_dir: Path,
                                                         evaluation: dict, tmp_path: Path) -> None:
    out = tmp_path / "adapter_eval.json"
    assert retrieval.main(["eval", "--model", str(retrieval_run), "--data", str(shape_pairs_dir / "val.jsonl"),
                           "--output", str(out), "--bootstrap", "0"]) == 0
    result = json.loads(out.read_text())
    assert result["t2i"] == pytest.approx(evaluation["t2i"], abs=1e-9) and result["ci95"] == {"t2i": {}, "i2t": {}}


def test_eval_agrees_with_sentence_transformers_information_retrieval_evaluator(
        retrieval_run: Path, shape_pairs_dir: Path, evaluation: dict) -> None:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from vlmkit.retrieval.model import load_encoder

    pairs = read_jsonl(shape_pairs_dir / "val.jsonl")
    corpus = {p["positive"]: Image.open(shape_pairs_dir / p["positive"]).convert("RGB") for p in pairs}
    queries = {str(k): p["query"] for k, p in enumerate(pairs)}
    relevant = {str(k): {p["positive"]} for k, p in enumerate(pairs)}
    from sentence_transformers.util import cos_sim

    ir = InformationRetrievalEvaluator(queries, corpus, relevant, write_csv=False, score_functions={"cosine": cos_sim})
    scores = ir.compute_metrices(load_encoder(retrieval_run / "merged"))["cosine"]
    for k in (1, 5, 10):
        assert evaluation["t2i"][f"R@{k}"] == pytest.approx(scores["accuracy@k"][k], abs=1e-9)
    assert evaluation["t2i"]["NDCG@10"] == pytest.approx(scores["ndcg@k"][10], abs=1e-9)


def test_merged_folder_equals_the_adapter_and_loads_everywhere(retrieval_run: Path, shape_pairs_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoProcessor, CLIPModel

    merged = retrieval_run / "merged"
    assert not (merged / "adapter_config.json").exists() and (retrieval_run / "adapter_config.json").is_file()
    assert isinstance(AutoModel.from_pretrained(str(merged)), CLIPModel)
    AutoProcessor.from_pretrained(str(merged))
    texts = ["a red circle", "the blue square on a grey background", "purple"]
    images = [str(shape_pairs_dir / "images" / f"shape_{k:03d}.png") for k in (0, 9, 30)]
    direct_t, direct_i = hf_embeddings(merged, texts, images)
    adapter = SentenceTransformer(str(retrieval_run), device="cpu")  # base + LoRA, unmerged
    ad_t = adapter.encode(texts, normalize_embeddings=True)
    ad_i = adapter.encode([Image.open(p).convert("RGB") for p in images], normalize_embeddings=True)
    assert np.abs(ad_t - direct_t).max() <= 1e-5 and np.abs(ad_i - direct_i).max() <= 1e-5
    st_merged = SentenceTransformer(str(merged), device="cpu")
    assert np.abs(st_merged.encode(texts, normalize_embeddings=True) - ad_t).max() <= 1e-5
    base = SentenceTransformer(str(json.loads((retrieval_run / "vlmkit_retrieval.json").read_text())["base_model"]))
    assert np.abs(base.encode(texts, normalize_embeddings=True) - ad_t).max() > 1e-2  # the adapter did change it
    info = json.loads((retrieval_run / "vlmkit_retrieval.json").read_text())
    assert info["complete"] and info["merge_max_abs_diff"] <= 1e-5 and info["global_step"] == 36


def test_compare_runs_with_the_fine_tuned_clip(capsys, monkeypatch, retrieval_run: Path, examples_copy: Path,
                                               tmp_path: Path) -> None:
    import compare
    from tests.fixtures.fake_text_encoder import BagOfWordsEncoder
    from vlmkit.cli import run_main
    from vlmkit.evaluation import pipeline

    fake = BagOfWordsEncoder()
    monkeypatch.setattr(pipeline.SentenceEncoder, "load", classmethod(lambda cls, *a, **k: fake))
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, ["--generated", str(examples_copy / "captions" / "image_illustration-vague.json"),
                                "--ground_truth", str(examples_copy / "groundTruth.json"), "--images_dir",
                                str(examples_copy / "multiview_images"), "--clip_model", str(retrieval_run / "merged"),
                                "--output_dir", str(out), "--no_coco"])
    assert exc.value.code == 0, capsys.readouterr().err
    result = json.loads((out / "compare_illustration-vague.json").read_text())
    assert result["metadata"]["encoders"]["clip"]["path"] == str(retrieval_run / "merged")
    assert result["metadata"]["encoders"]["clip"]["dim"] == 16
    assert result["overall_score_partial"] is False


def test_outputs_of_a_run(retrieval_run: Path) -> None:
    assert sorted(p.name for p in (retrieval_run / "checkpoints").glob("checkpoint-*")) == ["checkpoint-18",
                                                                                          "checkpoint-36"]
    ckpt = retrieval_run / "checkpoints" / "checkpoint-18"
    assert (ckpt / "adapter_model.safetensors").is_file() and (ckpt / "optimizer.pt").is_file()
    assert json.loads((ckpt / "vlmkit_retrieval.json").read_text())["global_step"] == 18
    assert (retrieval_run / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(retrieval_run.glob(".*staging*"))


def test_a_second_run_into_a_finished_output_refuses(retrieval_run: Path, tiny_clip_words_dir: Path,
                                                     shape_pairs_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"model_name_or_path: {tiny_clip_words_dir}\ndata_path: {shape_pairs_dir / 'train.jsonl'}\n"
                      f"output_dir: {retrieval_run}\neval_strategy: 'no'\n")
    with pytest.raises(InputError, match="holds checkpoint-36; pass --resume_from_checkpoint last"):
        retrieval.main(["train", str(config)])
    with pytest.raises(InputError, match="exclude each other"):
        retrieval.main(["train", str(config), "--resume_from_checkpoint", "last", "--overwrite_output_dir"])


@pytest.mark.slow
def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_run(retrieval_run: Path, tiny_clip_words_dir: Path,
                                                                     shape_pairs_dir: Path, tmp_path: Path) -> None:
    """As after a kill -9 at step 18..35: only checkpoint-18 survives; resuming ends where the full run ended."""
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "resumed"
    shutil.copytree(retrieval_run / "checkpoints" / "checkpoint-18", out / "checkpoints" / "checkpoint-18")
    config = tmp_path / "c.yaml"
    config.write_text(f"model_name_or_path: {tiny_clip_words_dir}\ndata_path: {shape_pairs_dir / 'train.jsonl'}\n"
                      f"val_data_path: {shape_pairs_dir / 'val.jsonl'}\noutput_dir: {out}\n")
    argv = ["train", str(config), "--config_override", *RETRIEVAL_TINY_OVERRIDES]
    assert retrieval.main(argv + ["--resume_from_checkpoint", "last"]) == 0
    texts = ["a red circle", "a green cross"]
    full = SentenceTransformer(str(retrieval_run / "merged")).encode(texts)
    resumed = SentenceTransformer(str(out / "merged")).encode(texts)
    assert np.abs(full - resumed).max() <= 1e-5
    resumed_rows = flatten(read_jsonl(out / "metrics.jsonl"))
    full_rows = flatten(read_jsonl(retrieval_run / "metrics.jsonl"))
    assert resumed_rows.keys() == full_rows.keys()
    assert resumed_rows == pytest.approx(full_rows)


def test_siglip_with_its_sigmoid_loss(tiny_siglip_words_dir: Path, shape_pairs_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModel, SiglipModel

    out = tmp_path / "siglip"
    config = tmp_path / "c.yaml"
    config.write_text(f"model_name_or_path: {tiny_siglip_words_dir}\ndata_path: {shape_pairs_dir / 'train.jsonl'}\n"
                      f"output_dir: {out}\neval_strategy: 'no'\nloss_type: sigmoid\n")
    assert retrieval.main(["train", str(config), "--config_override", "max_steps=3", "batch_size=16",
                           "learning_rate=1e-2", "save_steps=0", "logging_steps=1"]) == 0
    assert isinstance(AutoModel.from_pretrained(str(out / "merged")), SiglipModel)
    info = json.loads((out / "vlmkit_retrieval.json").read_text())
    assert info["kind"] == "siglip" and info["merge_max_abs_diff"] <= 1e-5 and math.isfinite(info["train_loss"])
    settings = json.loads((out / "merged" / "sentence_bert_config.json").read_text())
    assert json.dumps(settings).count("max_length") >= 1  # SigLIP's fixed-length text padding travels with it


def test_sigmoid_loss_equals_the_papers_formula(tiny_siglip_words_dir: Path) -> None:
    from vlmkit.retrieval.losses import SigLIPSigmoidLoss
    from vlmkit.retrieval.model import load_encoder

    model = load_encoder(tiny_siglip_words_dir)
    loss = SigLIPSigmoidLoss(model)
    torch.manual_seed(0)
    texts, images, negatives = torch.randn(4, 32), torch.randn(4, 32), torch.randn(4, 32)
    got = loss.compute_loss_from_embeddings([texts, images, negatives], None)
    hf = model[0].model
    t, b = hf.logit_scale.exp().item(), hf.logit_bias.item()
    x = torch.nn.functional.normalize(texts, dim=-1)
    ys = torch.nn.functional.normalize(torch.cat([images, negatives]), dim=-1)
    expected = 0.0
    for i in range(4):
        for j in range(8):
            z = 1.0 if j == i else -1.0
            expected -= math.log(1 / (1 + math.exp(-z * (t * float(x[i] @ ys[j]) + b))))
    assert got.item() == pytest.approx(expected / 4, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ["use_gradient_cache=true", "gradient_cache_chunk_size=4"],
    ["loss_type=symmetric_infonce", "use_mrl=true", "mrl_dims=[16,8]"],
    ["use_gradient_cache=true", "gradient_cache_chunk_size=8", "use_mrl=true", "mrl_dims=[16,4]"],
    ["use_lora=false", "learning_rate=1e-4"],
], ids=["gradcache", "symmetric+mrl", "gradcache+mrl", "full"])
def test_loss_variants_train_and_merge(overrides: list[str], tiny_clip_words_dir: Path, shape_pairs_dir: Path,
                                       tmp_path: Path) -> None:
    from transformers import CLIPModel

    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(f"model_name_or_path: {tiny_clip_words_dir}\ndata_path: {shape_pairs_dir / 'train.jsonl'}\n"
                      f"output_dir: {out}\neval_strategy: no\n")
    assert retrieval.main(["train", str(config), "--config_override", "max_steps=2", "batch_size=16",
                           "save_steps=0", *overrides]) == 0
    info = json.loads((out / "vlmkit_retrieval.json").read_text())
    assert math.isfinite(info["train_loss"]) and info["global_step"] == 2
    CLIPModel.from_pretrained(str(out / "merged"))
    assert (out / "adapter_config.json").is_file() == ("use_lora=false" not in overrides)
