"""Bad input is found before any model is loaded: over-long samples, output folders that cannot be written, missing
--report_to packages; and an error inside DataLoader workers or under torchrun stays one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import train
import vlmkit.training.model as model_module
import vlmkit.training.run as run_module
from vlmkit.io import InputError
from vlmkit.samples import caption_sample

LONG = "Athenian black-figure lekythos with a long description of the scene. " * 40


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_siglip_dir, tiny_qwen2_lm_dir) -> Path:
    from vlmkit.training.compose import compose_llava

    return compose_llava(tiny_siglip_dir, tiny_qwen2_lm_dir, tmp_path_factory.mktemp("preflight") / "base")


def write_data(folder: Path, examples: Path, captions: dict[str, str]) -> Path:
    objects = sorted((examples / "multiview_images").iterdir())
    path = folder / "train.jsonl"
    with path.open("w") as handle:
        for (sid, caption), obj in zip(captions.items(), objects, strict=False):
            handle.write(json.dumps(caption_sample(sid, [str(obj / "front.jpg")], caption).to_json()) + "\n")
    return path


def no_model(monkeypatch) -> None:
    monkeypatch.setattr(model_module, "load_for_training", lambda *a, **k: pytest.fail("a model was loaded"))
    monkeypatch.setattr(model_module, "resolve_base_model", lambda *a, **k: pytest.fail("a base was composed"))


def test_an_overlong_sample_stops_the_run_before_step_one_or_is_dropped_and_listed(base, tmp_path, examples_copy,
                                                                                    monkeypatch):
    data = write_data(tmp_path, examples_copy, {"short_1": "A lekythos.", "long_2": LONG, "short_3": "An amphora."})
    out = tmp_path / "out"
    argv = ["--base_model", str(base), "--data", str(data), "--output_dir", str(out), "--max_steps", "1",
            "--max_length", "120"]
    with monkeypatch.context() as m:
        no_model(m)
        with pytest.raises(InputError) as err:
            train.main(argv)
    message = str(err.value)
    assert message.startswith(f"{data}: 1 of 3 samples longer than --max_length 120 (given): long_2 (")
    assert "--skip_bad_samples drops and lists them" in message and "\n" not in message
    assert not list(out.glob("checkpoint-*"))

    assert train.main([*argv, "--skip_bad_samples"]) == 0
    skipped = json.loads((out / "skipped_samples.json").read_text())
    assert [(s["id"], s["split"]) for s in skipped] == [("long_2", "train")]
    assert skipped[0]["reason"].endswith("tokens > --max_length 120")
    assert json.loads((out / "train_summary.json").read_text())["samples"] == 2
    report = json.loads((out / "preflight.json").read_text())["train"]
    assert (report["samples"], report["kept"], report["skipped"], report["max_length"]) == (3, 2, 1, 120)
    assert report["tokens"]["max"] <= 120 and (out / "length_histogram.png").is_file()


def test_default_max_length_is_the_lms_context_and_the_preflight_is_cached(base, tmp_path, examples_copy, caplog):
    data = write_data(tmp_path, examples_copy, {"a_1": "A lekythos.", "b_2": LONG})
    out = tmp_path / "out"
    argv = ["--base_model", str(base), "--data", str(data), "--output_dir", str(out), "--preflight_only"]
    caplog.set_level("INFO")
    assert train.main(argv) == 0
    report = json.loads((out / "preflight.json").read_text())["train"]
    assert report["max_length"] == 2048 and report["max_length_source"] == "the language model's context"
    assert not report["cached"] and not list(out.glob("checkpoint-*")) and not (out / "adapter_config.json").exists()
    assert train.main(argv) == 0
    assert json.loads((out / "preflight.json").read_text())["train"]["cached"]
    assert "preflight (train, cached): 2 samples" in caplog.text


def test_the_process_pool_measures_what_the_process_does(base, tmp_path, examples_copy, monkeypatch):
    from transformers import AutoProcessor

    from vlmkit.training import preflight
    from vlmkit.training.data import load_samples

    data = write_data(tmp_path, examples_copy, {"a_1": "A lekythos.", "b_2": LONG, "c_3": "An amphora."})
    samples, root = load_samples(data)
    processor = AutoProcessor.from_pretrained(base)
    alone = preflight.measure_all(samples, root, processor, workers=1)
    monkeypatch.setattr(preflight, "POOL_THRESHOLD", 0)
    assert preflight.measure_all(samples, root, processor, workers=2) == alone


@pytest.mark.parametrize("case", ["output_is_a_file", "output_under_a_file", "wandb_missing", "unknown_backend"])
def test_settings_errors_come_before_any_work(base, tmp_path, examples_copy, monkeypatch, case):
    import importlib.util

    data = write_data(tmp_path, examples_copy, {"a_1": "A lekythos."})
    (tmp_path / "file").write_text("x")
    out, extra, message = tmp_path / "out", [], ""
    if case == "output_is_a_file":
        out, message = tmp_path / "file", "--output_dir is a file, not a folder"
    elif case == "output_under_a_file":
        out, message = tmp_path / "file" / "out", "cannot be created: .*file is a file"
    elif case == "wandb_missing":
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
        extra, message = ["--report_to", "wandb"], "the wandb package is not installed .*WANDB_MODE=offline"
    else:
        extra, message = ["--report_to", "mlflow"], "--report_to mlflow: choose none, tensorboard, wandb"
    monkeypatch.setattr("vlmkit.training.data.load_samples", lambda *a, **k: pytest.fail("data was read"))
    no_model(monkeypatch)
    with pytest.raises(InputError, match=message):
        train.main(["--base_model", str(base), "--data", str(data), "--output_dir", str(out), *extra])
    assert (tmp_path / "file").read_text() == "x"


def test_an_error_inside_dataloader_workers_stays_one_line(base, tmp_path, examples_copy, monkeypatch):
    """An image that breaks after the preflight (e.g. a file replaced mid-run) fails in a worker process."""
    from vlmkit.images import ImageProblem

    data = write_data(tmp_path, examples_copy, {"a_1": "A lekythos.", "b_2": "An amphora."})

    def broken(path):
        raise ImageProblem(path, "unreadable", "replaced during training")

    monkeypatch.setattr("vlmkit.training.data.open_rgb", broken)  # the dataset's, not the preflight's
    with pytest.raises(InputError) as err:
        train.main(["--base_model", str(base), "--data", str(data), "--output_dir", str(tmp_path / "out"),
                    "--max_steps", "1", "--dataloader_num_workers", "2"])
    assert str(err.value).startswith("sample a_1: image ") or str(err.value).startswith("sample b_2: image ")
    assert str(err.value).endswith("unreadable image (replaced during training)") and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_bad_image_under_torchrun_is_one_line_and_every_rank_exits_2(base, tmp_path, examples_copy, repo_root):
    data = write_data(tmp_path, examples_copy, {"a_1": "A lekythos.", "b_2": "An amphora."})
    front = Path(json.loads(data.read_text().splitlines()[1])["images"][0])
    front.write_bytes(b"not a jpeg")
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "vlmkit.training.launch", "--nproc_per_node", "2", "--master_port",
         str(run_module.free_port()), "train.py", "--base_model", str(base), "--data", str(data),
         "--output_dir", str(tmp_path / "out"), "--max_steps", "1"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {data}: sample b_2: image {front}: unreadable image "
                      f"({errors[0].split('unreadable image (', 1)[1]}"]
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
