"""The named recipes (configs/train/*.yaml) and `--config`: every shipped recipe trains two steps on tiny models,
keys are train.py's flags, the command line wins over the file, and a bad file is one line before anything loads.

The recipes' model folders are real-size models this machine does not have; the test points them at the tiny
random models (`demo.tiny`) of the same families and leaves every other setting of the recipe as it is
(gradient accumulation aside: 16 accumulated steps of a tiny model only cost time).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import train
from vlmkit.io import InputError
from vlmkit.safe_yaml import load_yaml

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "configs" / "train").glob("*.yaml"))


def recipe(path: Path) -> dict:
    return load_yaml(path.read_text(), path)


def tiny_models(name: str, fixtures) -> list[str]:
    """Flags that point recipe `name` at tiny models of its families."""
    settings = recipe(REPO / "configs" / "train" / f"{name}.yaml")
    if settings.get("arch") == "qwen2_5_vl":
        return ["--base_model", str(fixtures.getfixturevalue("tiny_qwen2_5_vl_dir"))]
    vision = fixtures.getfixturevalue("tiny_clip_dir" if "clip" in str(settings.get("vision_model")) else
                                      "tiny_siglip_dir")
    lm_name = str(settings.get("lm_model", "qwen3")).lower()
    lm = (fixtures.getfixturevalue("tiny_chat_lm_dirs")["gemma"] if "gemma" in lm_name else
          fixtures.getfixturevalue("tiny_qwen2_lm_dir" if "qwen2" in lm_name else "tiny_qwen3_lm_dir"))
    return ["--vision_model", str(vision), "--lm_model", str(lm)]


def test_the_named_recipes_are_shipped() -> None:
    names = {p.stem for p in RECIPES}
    assert {"llava_clip_qwen3", "qwen2_5_vl_lora", "mgm_gemma_lora", "llava_siglip_qwen2_5", "tiny"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_trains_two_steps_on_tiny_models(path: Path, request, repo_root, tmp_path) -> None:
    examples = repo_root / "examples"
    out = tmp_path / "out"
    settings = recipe(path)
    models = tiny_models(path.stem, request) if path.stem != "tiny" else tiny_models("llava_siglip_qwen2_5", request)
    assert train.main(["--config", str(path), *models, "--data", str(examples / "groundTruth.json"),
                       "--image_folder", str(examples / "multiview_images"), "--views", "front",
                       "--output_dir", str(out), "--max_steps", "2", "--gradient_accumulation_steps", "1"]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == 2
    info = json.loads((out / "vlmkit_training.json").read_text())
    assert info["arch"] == settings.get("arch", "llava")
    assert info["lora"]["r"] == settings.get("lora_r", 16) and info["lora"]["alpha"] == settings.get("lora_alpha", 32)
    assert info["lora"]["dropout"] == settings.get("lora_dropout", 0.05)
    if settings.get("unfreeze_merger"):
        assert any("merger" in module for module in info["trained_in_full"])
    state = json.loads((out / "trainer_state.json").read_text())
    rates = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    assert rates and max(rates) <= float(settings.get("learning_rate", 2e-4))


def parsed(argv: list[str]):
    return train.parse(argv)


def test_the_command_line_wins_over_the_file_and_yaml_spellings_are_taken_as_flags(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("data: d.jsonl\noutput_dir: out\nbase_model: /m\nlearning_rate: 2e-4\nlora_r: 8\n"
                      "eval_strategy: no\ngradient_checkpointing: true\nviews: front,back\n")
    options = parsed(["--config", str(config), "--lora_r", "4"])
    assert options.scope.lora_r == 4  # the flag wins
    assert options.training.learning_rate == 2e-4  # YAML 1.1 reads 2e-4 as text: taken as the flag would
    assert options.training.eval_strategy == "no" and options.training.gradient_checkpointing is True
    assert options.data.views == ("front", "back") and options.data.data == "d.jsonl"
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"data": "d.jsonl", "output_dir": "out", "base_model": "/m", "max_steps": 7}))
    assert parsed(["--config", str(as_json)]).training.max_steps == 7
    lists = tmp_path / "lists.yaml"
    lists.write_text("data: d\noutput_dir: o\nviews: [front, back]\nlora_target: [q_proj, v_proj]\n")
    options = parsed(["--config", str(lists)])
    assert options.data.views == ("front", "back") and options.scope.lora_target == "q_proj,v_proj"


def test_the_project_defaults_and_the_trainer_flags_of_transformers(capsys) -> None:
    options = parsed(["--data", "d", "--output_dir", "o", "--base_model", "m"])
    training = options.training
    assert (training.learning_rate, training.warmup_ratio, training.save_steps, training.logging_steps,
            training.report_to, training.num_train_epochs, training.per_device_train_batch_size,
            training.lr_scheduler_type) == (2e-4, 0.03, 500, 10, "none", 1.0, 1, "cosine")
    assert training.eval_strategy == "no"  # chosen once, in TrainOptions: steps with --eval_data
    assert parsed(["--data", "d", "--output_dir", "o", "--eval_data", "e"]).training.eval_strategy == "steps"
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--adam_beta2", "--optim", "--label_smoothing_factor", "--projector_lr", "--config", "--views"):
        assert flag in text  # TrainingArguments' own flags, the project's, and the config file


@pytest.mark.parametrize(("text", "message"), [
    ("data: d\nlearnig_rate: 1e-4\n", "run.yaml: unknown key 'learnig_rate' (did you mean 'learning_rate'?); "
                                    "the keys are train.py's flags without -- (python train.py --help)"),
    ("lora_r: many\n", "run.yaml: lora_r: expected a number, got 'many'"),
    ("arch: gpt\n", "run.yaml: arch: 'gpt': choose one of llava, qwen2_5_vl"),
    ("learning_rate: .nan\n", "run.yaml: learning_rate: must be a finite number, got nan"),
    ("- a\n- b\n", "run.yaml: a config is a YAML mapping of key: value (or a JSON object)"),
    ("lora_r: 0\n", "--lora_r 0: must be >= 1"),
])
def test_a_bad_config_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(InputError) as caught:
        parsed(["--config", str(config), "--data", "d", "--output_dir", "o"])
    assert str(caught.value).endswith(message) and "\n" not in str(caught.value)


def test_a_config_file_supplies_the_required_flags_and_a_missing_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"data: {tmp_path / 'd.jsonl'}\noutput_dir: {tmp_path / 'o'}\n")
    assert parsed(["--config", str(config), "--base_model", "m"]).data.data.endswith("d.jsonl")
    with pytest.raises(InputError, match="nowhere.yaml"):
        parsed(["--config", str(tmp_path / "nowhere.yaml")])
