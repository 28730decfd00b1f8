"""`--protocol vasevqa3d` pinned to the reference implementation's formulas, written out here independently.

The formulas below follow the definitions of issue 10 (what [VaseVQA-3D]'s compare.py computes), not our code:
CLIP text features from the processor with padding and truncation, L2-normalised; R@k by
`numpy.argsort(s)[::-1]`; Jaccard of `set(caption.lower().split())`; the Fréchet distance of the sentence model's
raw `encode()` output with 1e-6*I and `scipy.linalg.sqrtm`; the seed's overall weights. A tiny random CLIP and the
packaged all-MiniLM-L6-v2 (as `--sentence_model`) stand in for ViT-B/32 and all-mpnet-base-v2.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from transformers import CLIPModel, CLIPProcessor

import compare
from tests.fixtures.fake_text_encoder import write_captions
from vlmkit.cli import run_main

SHAPES = ["lekythos", "amphora", "hydria", "kylix", "calyx krater", "oinochoe", "pelike", "skyphos", "stamnos"]
SCENES = ["Herakles and the boar", "a warrior departing", "Dionysos, satyrs & maenads", "Theseus vs. the Minotaur",
          "women at a fountain-house", "Athena (Promachos)", "a symposium; lyre player", "Eos/Kephalos"]
SITES = ["Marathon, Attica", "Vulci (Etruria)", "Gela, Sicily", "Nola — Campania", "Athens: Kerameikos"]


def _dataset(n: int, seed: int = 7) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """n (id, reference) and shuffled (id, generated) pairs; punctuation- and date-heavy, references distinct."""
    rng = random.Random(seed)
    truth, generated, seen = [], [], set()
    while len(truth) < n:
        i = len(truth)
        start = rng.randrange(400, 700, 5)
        ref = (f"Attic {rng.choice(['black-figure', 'red-figure', 'white-ground'])} {rng.choice(SHAPES)}, "
               f"c. {start}–{start - rng.randrange(10, 60, 5)} BCE, depicting {rng.choice(SCENES)}; "
               f"{rng.choice(SITES)}.")
        if ref in seen:
            continue
        seen.add(ref)
        kind = rng.random()
        if kind < 0.4:
            gen = ref.replace("c. ", "ca. ").replace(";", ",").rstrip(".")
        elif kind < 0.8:
            gen = (f"{rng.choice(['Black-figure', 'Red-figure'])} {rng.choice(SHAPES)} ({start + 25} BC?) with "
                   f"{rng.choice(SCENES)}.")
        else:
            gen = f"A vase, {rng.choice(SITES)}!! {start} B.C.E. -- {rng.choice(SCENES)}"
        item = f"{i:08x}-1111-4222-8333-{rng.getrandbits(48):012x}_{i + 1}"
        truth.append((item, ref))
        generated.append((item, gen))
    rng.shuffle(generated)
    return truth, generated


# ---- the reference formulas ---------------------------------------------------------------------------------
def _clip_text_features(model_dir: Path, texts: list[str]) -> np.ndarray:
    model = CLIPModel.from_pretrained(str(model_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(model_dir))
    with torch.no_grad():
        inputs = processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        out = model.get_text_features(**inputs)
        feats = out.pooler_output if hasattr(out, "pooler_output") else out
        feats = feats / feats.norm(dim=-1, keepdim=True)
    return feats.numpy()


def _reference_r_at_k(gen: np.ndarray, ref: np.ndarray, k: int) -> float:
    similarity = gen @ ref.T
    hits = 0
    for i in range(len(gen)):
        top_k = np.argsort(similarity[i])[::-1][:k]
        hits += int(i in top_k)
    return hits / len(gen)


def _reference_lexical(a: str, b: str) -> float:
    wa, wb = set(a.lower().split()), set(b.lower().split())
    union = wa | wb
    return len(wa & wb) / len(union) if union else 0.0


def _reference_fid(gen: np.ndarray, ref: np.ndarray) -> float:
    mu1, mu2 = gen.mean(axis=0), ref.mean(axis=0)
    sigma1 = np.cov(gen, rowvar=False) + np.eye(gen.shape[1]) * 1e-6
    sigma2 = np.cov(ref, rowvar=False) + np.eye(ref.shape[1]) * 1e-6
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1 + sigma2 - 2 * covmean))


def _reference(truth, generated, clip_dir: Path, minilm: Path) -> dict[str, float]:
    from sentence_transformers import SentenceTransformer

    by_id = dict(generated)
    refs = [caption for _, caption in truth]
    gens = [by_id[item] for item, _ in truth]
    gen_clip, ref_clip = _clip_text_features(clip_dir, gens), _clip_text_features(clip_dir, refs)
    clip = float(np.mean(np.sum(gen_clip * ref_clip, axis=1)))
    st = SentenceTransformer(str(minilm), device="cpu")
    out = {
        "clip_score": clip,
        "semantic_similarity": clip,  # the reference's "CLIP-based semantic similarity"
        **{f"r_at_{k}": _reference_r_at_k(gen_clip, ref_clip, k) for k in (1, 5, 10)},
        "lexical_similarity": float(np.mean([_reference_lexical(g, r) for g, r in zip(gens, refs, strict=True)])),
        "fid_score": _reference_fid(st.encode(gens), st.encode(refs)),
    }
    out["overall_score"] = (0.25 * out["clip_score"] + 0.25 * out["semantic_similarity"] + 0.20 * out["r_at_10"]
                            + 0.15 * out["lexical_similarity"] + 0.10 * out["r_at_5"] + 0.05 * out["r_at_1"])
    return out


# ---- the tests --------------------------------------------------------------------------------------------------
def run(capsys, *argv: object) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def minilm() -> Path:
    from vlmkit.evaluation.encoders import packaged_minilm_path

    return packaged_minilm_path()


def test_vasevqa3d_protocol_reproduces_the_reference_formulas(capsys, tiny_clip_dir, minilm, tmp_path) -> None:
    truth, generated = _dataset(64)
    gt = write_captions(tmp_path / "groundTruth.json", truth)
    gen = write_captions(tmp_path / "captions" / "image_m.json", generated, "m")
    code, err = run(capsys, "--generated", gen, "--ground_truth", gt, "--output_dir", tmp_path / "out", "--no_coco",
                    "--protocol", "vasevqa3d", "--clip_model", tiny_clip_dir, "--sentence_model", minilm)
    assert code == 0, err
    result = json.loads((tmp_path / "out" / "compare_m.json").read_text())
    expected = _reference(truth, generated, tiny_clip_dir, minilm)
    assert 0.0 < expected["r_at_1"] < expected["r_at_10"] < 1.0  # the ranks are informative, not saturated
    for metric, value in expected.items():
        assert result[metric] == pytest.approx(value, abs=1e-6), metric
    assert result["protocol"] == "vasevqa3d" and result["overall_score_partial"] is False
    assert result["fid"]["eps"] == 1e-6 and "as encode() returns them" in result["fid"]["embedding"]
    sig = result["metric_signatures"]
    assert sig["r_at_1"].startswith("proto:vasevqa3d|enc:") and "|tie:argsort-desc|" in sig["r_at_1"]
    assert "|pool:64|" in sig["r_at_1"] and "|tok:whitespace-lower|" in sig["lexical_similarity"]
    assert "|emb:raw|eps:1e-06|" in sig["fid_score"] and "all-MiniLM-L6-v2@" in sig["fid_score"]
    assert sig["semantic_similarity"].split("|")[1] == sig["clip_score"].split("|")[1]  # the same CLIP encoder


def test_vasevqa3d_lexical_keeps_punctuation_where_vlmkit_ignores_it() -> None:
    from vlmkit.evaluation.lexical import jaccard

    a, b = "Attic amphora, c. 525–475 BCE; Vulci.", "attic AMPHORA c 525 475 bce vulci"
    assert jaccard(a, b, "words") == 1.0
    assert jaccard(a, b, "whitespace") == pytest.approx(_reference_lexical(a, b)) == pytest.approx(1 / 12)
    assert jaccard("", " ", "whitespace") == 0.0 and jaccard("...", "!!", "words") == 1.0


def test_vasevqa3d_without_clip_or_default_sentence_model_is_null_with_reasons(capsys, caplog, tmp_path,
                                                                              monkeypatch) -> None:
    truth, generated = _dataset(8)
    gt = write_captions(tmp_path / "groundTruth.json", truth)
    gen = write_captions(tmp_path / "captions" / "image_m.json", generated, "m")
    monkeypatch.chdir(tmp_path)  # no ./models/... here
    code, err = run(capsys, "--generated", gen, "--ground_truth", gt, "--output_dir", tmp_path / "out", "--no_coco",
                    "--protocol", "vasevqa3d", "--clip_model", tmp_path / "no_clip")
    assert code == 0, err
    assert "SENTENCE-MODEL METRICS UNAVAILABLE" in caplog.text and "CLIP METRICS UNAVAILABLE" in caplog.text
    result = json.loads((tmp_path / "out" / "compare_m.json").read_text())
    for metric in ("clip_score", "semantic_similarity", "r_at_1", "r_at_5", "r_at_10"):
        assert result[metric] is None and "CLIP model not found" in result["unavailable"][metric]
    assert result["fid_score"] is None
    assert result["unavailable"]["fid_score"].startswith(
        "sentence model not found at ./models/sentence-transformers/all-mpnet-base-v2")
    assert result["overall"]["components"] == ["lexical_similarity"] and result["overall_score_partial"]
    assert result["overall_score"] == pytest.approx(result["lexical_similarity"])
    # an explicit --sentence_model that does not exist stays an input error
    code, err = run(capsys, "--generated", gen, "--ground_truth", gt, "--output_dir", tmp_path / "out2",
                    "--protocol", "vasevqa3d", "--sentence_model", tmp_path / "nowhere")
    assert code == 2 and "sentence-transformers model not found" in err and not (tmp_path / "out2").exists()
