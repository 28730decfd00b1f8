"""download_models.py against loopback stand-ins of both hubs (tests/hub_servers.py) serving a tiny model, the offline
--check on complete, missing and truncated folders, and the missing-default-model message of every script."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import download_models
from tests.hub_servers import HubServer
from vlmkit.hub.check import check_folder
from vlmkit.io import InputError
from vlmkit.model_registry import REGISTRY, download_hint, find
from vlmkit.models import require_model_dir

LM = find("Qwen2.5-3B-Instruct")


@pytest.fixture(scope="module")
def sharded_lm(tiny_qwen2_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 LM saved in several safetensors shards with an index, as large checkpoints are."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("sharded") / "Qwen2.5-3B-Instruct"
    AutoModelForCausalLM.from_pretrained(tiny_qwen2_lm_dir).save_pretrained(out, max_shard_size="60KB")
    AutoTokenizer.from_pretrained(tiny_qwen2_lm_dir).save_pretrained(out)
    assert len(list(out.glob("model-*.safetensors"))) >= 2 and (out / "model.safetensors.index.json").is_file()
    return out


def same_files(a: Path, b: Path) -> bool:
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    got = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and ".cache" not in p.parts)
    return names == got and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def loads(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    ids = tokenizer("a red vase", return_tensors="pt").input_ids
    assert model(ids).logits.shape[:2] == ids.shape


@pytest.mark.parametrize("source", ["hf", "modelscope"])
def test_download_resumes_a_cut_transfer_and_the_model_loads(source: str, sharded_lm: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import huggingface_hub.constants

    shard = sorted(p.name for p in sharded_lm.glob("model-*.safetensors"))[0]
    kind = "hf" if source == "hf" else "ms"
    if source == "hf":
        # huggingface_hub resumes from the last whole chunk it wrote (10 MB by default): smaller chunks let a tiny
        # file show it.
        monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    with HubServer(kind, sharded_lm, LM.repo_id(source), cut_once=(shard,)) as hub:
        monkeypatch.setenv("HF_ENDPOINT" if source == "hf" else "MODELSCOPE_ENDPOINT", hub.url)
        code = download_models.main(["--model", LM.name, "--source", source, "--local_dir", str(tmp_path),
                                     "--revision", "v1.0"])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    asked = f"/api/models/{LM.hf_id}/revision/v1.0" if source == "hf" else "Revision=v1.0"
    assert any(asked in r[1] for r in hub.requests)
    target = tmp_path / "Qwen2.5-3B-Instruct"
    assert same_files(sharded_lm, target)
    # The cut-off transfer (half of the shard) was continued from where it broke, not started again.
    half = (sharded_lm / shard).stat().st_size // 2
    ranged = [int(r[2].split("=")[1].rstrip("-")) for r in hub.requests if shard in r[1] and r[0] == "GET" and r[2]]
    assert len(ranged) == 1 and half - 4096 < ranged[0] <= half
    loads(target)
    assert "| Qwen2.5-3B-Instruct" in out.out and "| yes" in out.out
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # back to offline for everything else in this process


@pytest.mark.parametrize("source", ["hf", "modelscope"])
def test_network_failures_are_one_line_naming_hub_model_and_remedy(source: str, sharded_lm: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    variable = "HF_ENDPOINT" if source == "hf" else "MODELSCOPE_ENDPOINT"
    with HubServer("hf" if source == "hf" else "ms", sharded_lm, "someone/else") as hub:  # wrong repo: 404s
        monkeypatch.setenv(variable, hub.url)
        assert download_models.main(["--model", LM.name, "--source", source, "--local_dir", str(tmp_path)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    hub_name = "Hugging Face" if source == "hf" else "ModelScope"
    other = "modelscope" if source == "hf" else "hf"
    assert len(err) == 1 and hub_name in err[0] and LM.repo_id(source) in err[0]
    assert "not found" in err[0] and f"--source {other}" in err[0] and "by hand" in err[0]
    monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens there
    assert download_models.main(["--model", LM.name, "--source", source, "--local_dir", str(tmp_path)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "127.0.0.1:9" in err[0] and LM.repo_id(source) in err[0] and "rerun" in err[0]
    assert not (tmp_path / "Qwen2.5-3B-Instruct").exists()  # nothing was fetched: no empty model folder


def test_check_complete_missing_and_truncated_folders(sharded_lm: Path, tiny_clip_dir: Path, tmp_path: Path,
                                                      capsys) -> None:
    models = tmp_path / "models"
    shutil.copytree(sharded_lm, models / "Qwen2.5-3B-Instruct")
    shutil.copytree(tiny_clip_dir, models / "openai" / "clip-vit-base-patch32")
    argv = ["--check", "--local_dir", str(models)]
    assert download_models.main([*argv, "--model", "Qwen2.5-3B-Instruct", "clip-vit-base-patch32", "--load"]) == 0
    assert "NO" not in capsys.readouterr().out

    assert download_models.main(argv) == 1  # the other four default models are missing
    out = capsys.readouterr()
    rows = {line.split("|")[1].strip(): line for line in out.out.splitlines()[2:]}
    assert set(rows) == {e.name for e in REGISTRY}
    assert "folder not found" in rows["InternVL3_5-4B"] and "folder not found" not in rows["Qwen2.5-3B-Instruct"]
    assert "python download_models.py --model Qwen2.5-VL-3B-Instruct InternVL3_5-4B" in out.err

    lm = models / "Qwen2.5-3B-Instruct"
    shard = sorted(lm.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-100])  # an interrupted copy
    result = check_folder(lm, "lm")
    assert not result.complete and result.status == "incomplete"
    assert result.problems == [f"{shard.name} is damaged or truncated (Error while deserializing header: "
                               "incomplete metadata, file not fully covered)"]
    shard.unlink()
    assert check_folder(lm, "lm").problems == [f"{shard.name} missing"]
    shard.write_bytes(b"")
    assert check_folder(lm, "lm").problems == [f"{shard.name} is empty"]
    (models / "openai" / "clip-vit-base-patch32" / "processor_config.json").unlink()
    assert download_models.main([*argv, "--model", "clip-vit-base-patch32"]) == 1
    assert "no image processor config" in capsys.readouterr().out


def test_check_catches_a_config_that_does_not_build(sharded_lm: Path, tmp_path: Path) -> None:
    import json

    lm = tmp_path / "Qwen2.5-3B-Instruct"
    shutil.copytree(sharded_lm, lm)
    config = json.loads((lm / "config.json").read_text())
    (lm / "config.json").write_text(json.dumps({**config, "vocab_size": -5}))
    assert check_folder(lm, "lm").loadable is True  # the config itself reads; only building the model shows it
    result = check_folder(lm, "lm", load=True)
    assert result.complete and result.loadable is False and "meta device" in result.problems[0]
    (lm / "config.json").write_text(json.dumps({**config, "model_type": "no-such-model"}))
    result = check_folder(lm, "lm")
    assert result.loadable is False and "transformers cannot read the config" in result.problems[0]
    (lm / "config.json").write_text("{not json")
    assert check_folder(lm, "lm").problems == ["config.json does not parse (JSONDecodeError)"]


def test_bad_flags_are_input_errors() -> None:
    with pytest.raises(InputError, match="not a default model"):
        download_models.main(["--model", "gpt-17"])
    with pytest.raises(InputError, match="--model NAME"):
        download_models.main([])
    with pytest.raises(InputError, match="exactly one --model"):
        download_models.main(["--all", "--repo_id", "x/y"])


def test_list_names_every_default_with_both_hub_ids(capsys) -> None:
    assert download_models.main(["--list"]) == 0
    out = capsys.readouterr().out
    for entry in REGISTRY:
        assert entry.name in out and entry.hf_id in out and entry.ms_id in out


def test_missing_default_model_folders_name_the_download_command(tmp_path: Path) -> None:
    import compare
    import internvl
    import qwen

    hint = download_hint("./models/Qwen2.5-VL-3B-Instruct")
    assert hint == "python download_models.py --model Qwen2.5-VL-3B-Instruct"
    assert download_hint(tmp_path / "m" / "OpenGVLab" / "InternVL3_5-4B") == (
        f"python download_models.py --model InternVL3_5-4B --local_dir {tmp_path / 'm'}")
    assert download_hint(tmp_path / "my-model") is None
    # each default path of the scripts is in the registry
    for default in (qwen.DEFAULT_MODEL_PATH, internvl.DEFAULT_MODEL_PATH, compare.DEFAULT_CLIP_MODEL,
                    "./models/siglip-so400m-patch14-384", "./models/Qwen2.5-3B-Instruct",
                    "./models/sentence-transformers/all-mpnet-base-v2"):
        assert download_hint(default), default
    with pytest.raises(InputError, match=r"fetch it with `python download_models.py --model Qwen2.5-VL-3B-Instruct "
                                         rf"--local_dir {tmp_path}`"):
        qwen.main(["--model_path", str(tmp_path / "Qwen2.5-VL-3B-Instruct"), "--input_dir", str(tmp_path)])
    with pytest.raises(InputError, match="weights are never downloaded at run time: pass a local folder"):
        require_model_dir(tmp_path / "my-model", "the model")
