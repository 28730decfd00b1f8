"""One model-folder checker (`vlmkit.models.model_file_problems`) for the loaders and `download_models.py --check`:
it collects every problem, knows every weight format, and words each problem for both readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from vlmkit.hub.check import check_folder
from vlmkit.io import InputError
from vlmkit.models import check_model_files, model_file_problems


def shards(folder: Path, n: int) -> list[str]:
    """A sharded safetensors checkpoint of `n` real shards (one 4x4 tensor each) and its index."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    for i, name in enumerate(names):
        save_file({f"w{i}": np.ones((4, 4), dtype=np.float32)}, str(folder / name))
    weight_map = {f"w{i}": name for i, name in enumerate(names)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return names


def test_every_problem_is_collected_in_a_loaders_order(tmp_path: Path) -> None:
    names = shards(tmp_path / "m", 4)
    (tmp_path / "m" / names[0]).unlink()
    (tmp_path / "m" / names[1]).write_bytes(b"")
    data = (tmp_path / "m" / names[2]).read_bytes()
    (tmp_path / "m" / names[2]).write_bytes(data[:-10])
    found = model_file_problems(tmp_path / "m")
    assert [p.short for p in found.problems] == [
        f"{names[0]} missing", f"{names[1]} is empty",
        f"{names[2]} is damaged or truncated (Error while deserializing header: incomplete metadata, file not fully "
        "covered)"]
    assert found.weights_bytes == len(data) - 10 + (tmp_path / "m" / names[3]).stat().st_size
    with pytest.raises(InputError) as info:
        check_model_files(tmp_path / "m", "model")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'm' / 'model.safetensors.index.json'}: shard {names[0]} is missing "
                              "(1 of 4 listed shards); the download is incomplete (and 2 more: ")
    assert f"{names[1]} is empty; {names[2]} is damaged or truncated" in message and "\n" not in message


@pytest.mark.parametrize("weights", ["tf_model.h5", "flax_model.msgpack", "model-q4_k_m.gguf", "pytorch_model.bin"])
def test_every_weight_format_counts_as_weights(tmp_path: Path, weights: str) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / weights).write_bytes(b"\0" * 64)
    assert check_model_files(tmp_path, "model") == tmp_path
    assert model_file_problems(tmp_path).weights_bytes == 64
    (tmp_path / weights).write_bytes(b"")
    with pytest.raises(InputError, match=rf"{weights}: empty weight file \(0 bytes\)"):
        check_model_files(tmp_path, "model")


def test_no_weights_and_bad_config_in_both_wordings(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[1, 2]")
    found = model_file_problems(tmp_path, "language model")
    assert [p.short for p in found.problems] == [
        "config.json is not a JSON object",
        "no weights (model.safetensors, pytorch_model.bin, tf_model.h5, flax_model.msgpack, *.gguf or a sharded "
        "index)"]
    assert found.problems[1].message == (f"{tmp_path}: language model has no weight files (model.safetensors, "
                                         "pytorch_model.bin, ...); the download or save is incomplete")
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(InputError, match=r"config.json: malformed JSON at line 1 column 2"):
        check_model_files(tmp_path, "model")


def test_download_check_uses_the_same_checker(tmp_path: Path) -> None:
    names = shards(tmp_path / "lm", 9)
    for name in names[:7]:
        (tmp_path / "lm" / name).unlink()
    (tmp_path / "lm" / "tokenizer.json").write_text("{}")
    result = check_folder(tmp_path / "lm", "lm")
    assert result.problems == [f"{n} missing" for n in names[:5]] + ["... 2 more shards"]
    assert not result.complete and result.status == "incomplete"
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "model.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    result = check_folder(tmp_path / "gguf", "vision")
    assert result.problems == ["config.json missing", "no image processor config (preprocessor_config.json / "
                               "processor_config.json)"]
    assert result.weights_bytes == 64
