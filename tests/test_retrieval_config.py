"""retrieval.py train's config (defaults < YAML < --config_override) and every bad input that must stop a command
with one line and exit 2 BEFORE a model is loaded (the model folders here have no weights: loading would fail)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from vlmkit.io import InputError
from vlmkit.retrieval.config import FIELDS, RetrievalConfig, load_config

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import retrieval  # noqa: E402


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fake_model(folder: Path, model_type: str = "clip", arch: str = "CLIPModel") -> Path:
    """A folder with the JSON of a model but no weights: enough for every check that precedes loading."""
    write(folder / "config.json", json.dumps({"model_type": model_type, "architectures": [arch],
                                              "projection_dim": 16}))
    write(folder / "preprocessor_config.json", "{}")
    return folder


@pytest.fixture()
def setup(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    for k in range(3):
        Image.new("RGB", (8, 8), (40 * k, 0, 0)).save(images / f"{k}.png")
    data = write(tmp_path / "data" / "train.jsonl",
                 "".join(json.dumps({"query": f"caption {k}", "positive": f"images/{k}.png"}) + "\n" for k in range(3)))
    model = fake_model(tmp_path / "model")
    config = write(tmp_path / "run.yaml", f"model_name_or_path: {model}\ndata_path: {data}\n"
                                          f"output_dir: {tmp_path / 'out'}\neval_strategy: 'no'\n")
    return {"root": tmp_path, "data": data, "model": model, "config": config, "images": images}


def test_defaults_then_yaml_then_overrides(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "model_name_or_path: m\ndata_path: d.jsonl\noutput_dir: o\neval_strategy: 'no'\n"
                                     "learning_rate: 2e-5\nbatch_size: 32\nuse_lora: false\n")
    c = load_config(cfg, ["batch_size=8", "mrl_dims=[64, 32]", "temperature=0.1", "val_data_path=null",
                          "lora_target_modules=q_proj,v_proj", "eval_strategy=no", "report_to=none"])
    assert c.learning_rate == 2e-5  # YAML 1.1 reads 2e-5 as a string; the field's type makes it a float
    assert (c.batch_size, c.use_lora, c.temperature) == (8, False, 0.1)
    assert c.mrl_dims == [64, 32] and c.lora_target_modules == ["q_proj", "v_proj"]
    assert c.epochs == RetrievalConfig().epochs and c.loss_type == "infonce"  # untouched defaults
    assert (c.val_data_path, c.eval_strategy, c.report_to) == (None, "no", "none")
    unquoted = write(tmp_path / "u.yaml", "model_name_or_path: m\ndata_path: d\noutput_dir: o\neval_strategy: no\n")
    assert load_config(unquoted).eval_strategy == "no"  # YAML 1.1 would read it as false


def test_the_config_system_is_train_pys_json_files_and_ranges_in_the_fields(tmp_path: Path) -> None:
    """One config system for both trainers: the same reader (a JSON file works as the YAML does), the same
    unknown-key message, each range declared once as its field's metadata."""
    from vlmkit.config_files import unknown_key
    from vlmkit.retrieval.config import RANGES

    cfg = write(tmp_path / "c.json", json.dumps({"model_name_or_path": "m", "data_path": "d", "output_dir": "o",
                                                  "eval_strategy": "no", "batch_size": 16}))
    assert load_config(cfg, ["epochs=2"]).batch_size == 16 and load_config(cfg, ["batch_size=8"]).batch_size == 8
    assert RANGES["batch_size"] is FIELDS["batch_size"].metadata["range"]
    assert {name for name, f in FIELDS.items() if "range" in f.metadata} == set(RANGES) and len(RANGES) == 20
    with pytest.raises(InputError) as exc:
        load_config(write(tmp_path / "typo.yaml", "lerning_rate: 1\n"))
    assert str(exc.value) == str(unknown_key("lerning_rate", str(tmp_path / "typo.yaml"), FIELDS))


def test_the_shipped_config_holds_the_guides_settings() -> None:
    import yaml

    shipped = yaml.safe_load((REPO / "configs/retrieval/clip_text_to_image.yaml").read_text())
    assert set(shipped) <= set(FIELDS)
    c = load_config(REPO / "configs/retrieval/clip_text_to_image.yaml")
    assert (c.use_lora, c.lora_r, c.lora_alpha, c.temperature, c.loss_type) == (True, 16, 32, 0.05, "infonce")
    assert (c.epochs, c.batch_size, c.learning_rate, c.weight_decay, c.max_grad_norm) == (3, 128, 2e-5, 0.01, 1.0)
    assert (c.scheduler_type, c.warmup_ratio, c.save_steps, c.eval_strategy) == ("cosine", 0.1, 0, "epoch")


@pytest.mark.parametrize("yaml_text,overrides,message", [
    ("lerning_rate: 1\n", [], "unknown key 'lerning_rate' (did you mean 'learning_rate'?); valid keys: "
                              "model_name_or_path, "),
    ("", ["btach_size=3"], "--config_override: unknown key 'btach_size' (did you mean 'batch_size'?)"),
    ("", ["batch_size"], "expected key=value"),
    ("batch_size: 1.5\n", [], "batch_size=1.5 is not a valid int"),
    ("use_lora: maybe\n", [], "use_lora='maybe' is not a valid bool"),
    ("loss_type: triplet\n", [], "loss_type 'triplet': choose one of infonce, symmetric_infonce, sigmoid"),
    ("", ["loss_type=sigmoid", "use_gradient_cache=true"], "use_gradient_cache works with loss_type infonce"),
    ("eval_strategy: epoch\n", [], "eval_strategy epoch needs val_data_path"),
    ("temperature: 0\n", [], "temperature must be > 0"),
    ("- a\n- b\n", [], "a config is a YAML mapping"),
    ("a: [1\n", [], "malformed YAML at line"),
])
def test_config_errors_are_one_line(tmp_path: Path, yaml_text: str, overrides: list[str], message: str) -> None:
    base = "model_name_or_path: m\ndata_path: d\noutput_dir: o\n"
    if not yaml_text.startswith("- "):
        yaml_text = base + ("eval_strategy: 'no'\n" if "eval_strategy" not in yaml_text else "") + yaml_text
    cfg = write(tmp_path / "c.yaml", yaml_text)
    with pytest.raises(InputError) as exc:
        load_config(cfg, overrides)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "retrieval.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_a_config_typo_exits_2_with_one_line_and_writes_nothing(setup: dict[str, Path]) -> None:
    proc = run_cli("train", str(setup["config"]), "--config_override", "epochz=2")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: --config_override: unknown key 'epochz' (did you mean 'epochs'?)")
    assert not (setup["root"] / "out").exists()


def train_error(setup: dict[str, Path], *overrides: str) -> str:
    with pytest.raises(InputError) as exc:
        retrieval.main(["train", str(setup["config"]), "--config_override", *overrides] if overrides
                       else ["train", str(setup["config"])])
    assert not (setup["root"] / "out").exists()
    return str(exc.value)


def test_train_refuses_a_model_that_is_not_clip_or_siglip(setup: dict[str, Path]) -> None:
    vision_only = fake_model(setup["root"] / "siglip_vision", "siglip_vision_model", "SiglipVisionModel")
    msg = train_error(setup, f"model_name_or_path={vision_only}")
    assert "a siglip_vision_model model (SiglipVisionModel), not CLIP or SigLIP" in msg
    assert "model folder not found" in train_error(setup, f"model_name_or_path={setup['root'] / 'nope'}")
    assert "sigmoid needs a SigLIP model" in train_error(setup, "loss_type=sigmoid")
    assert "larger than the model's embedding size 16" in train_error(setup, "use_mrl=true", "mrl_dims=[32,16]")


def test_train_stops_at_a_bad_image_before_loading_the_model(setup: dict[str, Path]) -> None:
    (setup["images"] / "1.png").write_bytes(b"not a png")
    msg = train_error(setup)
    assert msg.startswith(f"{setup['data']}: line 2: {setup['images'] / '1.png'}: unreadable image")
    assert "--skip_bad_samples" in msg
    (setup["images"] / "1.png").unlink()
    assert "line 2" in train_error(setup) and "missing image" in train_error(setup)


def test_train_stops_at_an_empty_query(setup: dict[str, Path]) -> None:
    setup["data"].write_text(setup["data"].read_text() + json.dumps({"query": "  ", "positive": "images/0.png"}))
    assert train_error(setup) == f"{setup['data']}: line 4: empty query"


def test_eval_stops_before_loading(setup: dict[str, Path]) -> None:
    out = setup["root"] / "eval.json"
    base = ["eval", "--model", str(setup["model"]), "--data", str(setup["data"]), "--output", str(out)]
    text_model = fake_model(setup["root"] / "bert", "bert", "BertModel")
    cases = {
        ("--model", str(text_model)): "a bert model (BertModel), not CLIP or SigLIP",
        ("--zero_shot", str(setup["root"] / "missing")): "--zero_shot: model folder not found",
        ("--output", str(setup["root"])): "--output is a folder, not a file",
    }
    for extra, message in cases.items():
        args = list(base)
        if extra[0] in args:
            args[args.index(extra[0]) + 1] = extra[1]
        else:
            args += list(extra)
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            retrieval.main(args)
    (setup["images"] / "2.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"line 3: .*2\.png: empty image"):
        retrieval.main(base)
    assert not out.exists()


def test_search_and_serve_stop_before_loading(tmp_path: Path) -> None:
    for args, message in [
        (["search", "--index", str(tmp_path), "--query", " "], "--query: empty query"),
        (["search", "--index", str(tmp_path)], "pass either --query TEXT or --image FILE"),
        (["search", "--index", str(tmp_path / "none"), "--query", "x"], "folder not found"),
        (["search", "--index", str(tmp_path), "--query", "x"], "not an index folder (no index.json)"),
        (["serve", "--index", str(tmp_path)], "not an index folder"),
    ]:
        with pytest.raises(InputError) as exc:
            retrieval.main(args)
        assert message in str(exc.value)


def test_skip_bad_samples_drops_counts_and_lists_before_training(setup: dict[str, Path]) -> None:
    from vlmkit.retrieval.train import prepare

    (setup["images"] / "1.png").write_bytes(b"GIF89a truncated")
    config = load_config(setup["config"], ["skip_bad_samples=true"])
    prep = prepare(config, None, False)
    assert [p.query for p in prep.train] == ["caption 0", "caption 2"]
    assert [s.to_json() for s in prep.skipped] == [{"file": str(setup["data"]), "line": 2,
                                                    "image": str(setup["images"] / "1.png"),
                                                    "reason": prep.skipped[0].reason}]
    assert prep.skipped[0].reason.startswith("unreadable image")
    assert not (setup["root"] / "out").exists()  # nothing written before training starts
