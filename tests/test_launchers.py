"""The launcher convention (vlmkit/launcher.sh) for train.sh, test.sh, compare.sh, eval_vqa.sh and retrieval.sh.

Every launcher runs under `sh` (dash) and `bash`; --help prints usage and starts nothing; extra arguments reach the
Python script unchanged; PYTHON is honoured; a setting that mirrors a script flag has the script's own default
(train.sh's training settings are empty by default: its recipe file, configs/train/$RECIPE.yaml, holds them);
train.sh and eval_vqa.sh fit the machine (the GPUs present; none: one CPU process) and say what they chose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAUNCHERS = {"train.sh": "train.py", "test.sh": "caption.py", "compare.sh": "compare.py", "eval_vqa.sh": "eval_vqa.py",
             "retrieval.sh": "retrieval.py"}

# setting -> (flag dest of the script)
MIRRORED = {
    "test.sh": {"INPUT_DIR": "input_dir", "OUTPUT_DIR": "output_dir", "BATCH_SIZE": "batch_size",
                "MAX_NEW_TOKENS": "max_new_tokens", "DEVICE": "device"},
    "compare.sh": {"GROUND_TRUTH": "ground_truth", "OUTPUT_DIR": "output_dir", "CLIP_MODEL": "clip_model",
                   "DEVICE": "device", "BATCH_SIZE": "batch_size", "IMAGES_DIR": "images_dir",
                   "SENTENCE_MODEL": "sentence_model", "PROTOCOL": "protocol", "JUDGE_MODEL": "judge_model"},
    "eval_vqa.sh": {"ADAPTER_PATH": "adapter_path", "QUESTIONS": "questions", "IMAGE_DIR": "image_dir",
                    "BATCH_SIZE": "batch_size", "MAX_NEW_TOKENS": "max_new_tokens", "LIMIT": "limit"},
    "retrieval.sh": {},  # CONFIG is the positional config file; the training settings live in that YAML
}
DEFAULT_RECIPE = "train.py --config configs/train/llava_siglip_qwen2_5.yaml "


def settings(launcher: str) -> dict[str, tuple[str, str]]:
    """NAME -> (default, comment) from the launcher's settings block."""
    text = (REPO / launcher).read_text()
    block = text.split("# ---- settings", 1)[1].split("# ---- end of settings", 1)[0]
    found = {}
    for line in block.splitlines():
        m = re.match(r'^(\w+)="?\$\{\1:?-([^}]*)\}"?\s*(?:#\s*(.*))?$', line.strip())
        if m:
            found[m.group(1)] = (m.group(2), m.group(3) or "")
    return found


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(args, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_help_prints_usage_and_the_scripts_flags_and_starts_nothing(launcher: str, shell: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for flag in ("--help", "-h"):
        proc = run([shell, str(REPO / launcher), flag], tmp_path,
                   OUTPUT_DIR=str(out), TINY_DIR=str(tmp_path / "tiny"))
        assert proc.returncode == 0, proc.stderr
        assert "settings (edit them at the top of" in proc.stdout
        assert f"usage: {LAUNCHERS[launcher]}" in proc.stdout
        assert "PYTHON=" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output folder, no tiny models


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_an_unknown_flag_reaches_the_script_which_rejects_it(launcher: str, tmp_path: Path) -> None:
    args = ["--examples"] if launcher == "compare.sh" else []
    proc = run(["sh", str(REPO / launcher), *args, "--no_such_flag", "7"],
               tmp_path, NUM_GPUS="1", ZERO_CONFIG="", MERGE="0", OUTPUT_DIR=str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unrecognized arguments: --no_such_flag 7" in proc.stderr
    assert f"{LAUNCHERS[launcher]}: error" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_python_is_honoured(tmp_path: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho \"fake python: $*\"\n")
    fake.chmod(0o755)
    proc = run(["sh", str(REPO / "test.sh"), "--batch_size", "3"], tmp_path, PYTHON=str(fake))
    assert proc.returncode == 0
    assert proc.stdout.strip().endswith("--overwrite --batch_size 3")  # extra flags last, so they win
    assert f"fake python: {REPO / 'caption.py'}" in proc.stdout


@pytest.mark.parametrize("launcher", sorted(MIRRORED))
def test_settings_that_mirror_a_flag_have_the_scripts_default(launcher: str) -> None:
    sys.path.insert(0, str(REPO))
    import importlib

    module = importlib.import_module(LAUNCHERS[launcher].removesuffix(".py"))
    parser = module.build_parser()
    found = settings(launcher)
    for name, dest in MIRRORED[launcher].items():
        value, _ = found[name]
        default = parser.get_default(dest)
        if default is None:
            assert value == "", f"{launcher} {name}={value!r}, but {dest} has no default"
        else:
            assert type(default)(value) == default, f"{launcher} {name}={value!r} vs {dest}={default!r}"


def test_train_sh_settings_left_empty_come_from_the_recipe_and_set_ones_override_it(tmp_path: Path) -> None:
    """Every training setting of train.sh defaults to empty (the recipe's value): one source per default."""
    names = {"ARCH", "STAGE", "VISION_MODEL", "LM_MODEL", "BATCH_SIZE", "GRAD_ACCUM", "LR", "EPOCHS", "MAX_STEPS",
             "SAVE_STEPS", "LOGGING_STEPS", "LORA_R", "LORA_ALPHA", "GRAD_CKPT"}
    found = settings("train.sh")
    assert {name: found[name][0] for name in names} == dict.fromkeys(names, "")
    assert found["RECIPE"][0] == "llava_siglip_qwen2_5"
    fake = str(fake_python(tmp_path))
    proc = run(["sh", str(REPO / "train.sh"), "--max_steps", "3"], tmp_path, PYTHON=fake, MERGE="0",
               RECIPE="qwen2_5_vl_lora", LR="1e-4", GRAD_CKPT="0", BASE_VLM="/models/q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1] == (
        "train.py --config configs/train/qwen2_5_vl_lora.yaml --base_model /models/q --data ./data/train.jsonl "
        "--output_dir ./outputs/qwen2_5_vl-finetune --learning_rate 1e-4 --gradient_checkpointing false --max_steps 3")
    # a composing recipe's models give way to BASE_VLM
    proc = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=fake, MERGE="0", BASE_VLM="/models/llava")
    assert proc.stdout.splitlines()[1].startswith(DEFAULT_RECIPE + "--vision_model  --lm_model  --base_model ")
    bad = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=fake, RECIPE="nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error: RECIPE=nope: configs/train/nope.yaml not found")


def test_test_sh_resume_or_overwrite_given_as_a_flag_wins_over_the_setting(tmp_path: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho \"$*\"\n")
    fake.chmod(0o755)
    proc = run(["sh", str(REPO / "test.sh"), "--resume"], tmp_path, PYTHON=str(fake), RESUME="0")
    assert proc.stdout.split("\n")[-2].split().count("--resume") == 1 and "--overwrite" not in proc.stdout


def fake_python(tmp_path: Path) -> Path:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho \"$*\"\n")
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("node_rank", ["0", "1"])
def test_train_sh_multi_node_torchrun(tmp_path: Path, node_rank: str) -> None:
    """Each machine runs train.sh with its NODE_RANK: torchrun gets the node flags; the master (node 0) runs the
    one-process preflight first and merges at the end, the others do neither."""
    proc = run(["sh", str(REPO / "train.sh"), "--max_steps", "3"], tmp_path, PYTHON=str(fake_python(tmp_path)),
               NUM_GPUS="4", NNODES="2", NODE_RANK=node_rank, MASTER_ADDR="10.0.0.1", ZERO_CONFIG="zero2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    launch = [line for line in lines if line.startswith("-m vlmkit.training.launch")]
    assert launch == [line for line in lines if "--nproc_per_node" in line] and len(launch) == 1
    assert launch[0].startswith(f"-m vlmkit.training.launch --nnodes 2 --node_rank {node_rank} --master_addr "
                                "10.0.0.1 --nproc_per_node 4 --master_port 29500 " + DEFAULT_RECIPE)
    assert " --deepspeed zero2 " in launch[0] and launch[0].endswith(" --max_steps 3")  # extra flags last
    preflight = [line for line in lines if line.endswith("--max_steps 3 --preflight_only")]
    merge = [line for line in lines if line.startswith("merge_lora_weights.py")]
    assert (len(preflight), len(merge)) == ((1, 1) if node_rank == "0" else (0, 0))
    if preflight:
        assert lines.index(preflight[0]) < lines.index(launch[0])


def test_train_sh_single_node_and_deepspeed_hostfile(tmp_path: Path) -> None:
    fake = str(fake_python(tmp_path))
    single = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=fake, NUM_GPUS="2", ZERO_CONFIG="zero3",
                 MERGE="0")
    assert single.returncode == 0, single.stderr
    chose, first, second = single.stdout.splitlines()
    assert chose.startswith("train.sh: 0 GPU(s) found -> 2 process(es) per machine on CPU, fp32, DeepSpeed zero3")
    assert first.startswith(DEFAULT_RECIPE) and first.endswith(" --preflight_only")
    assert second == "-m vlmkit.training.launch --nproc_per_node 2 --master_port 29500 " + first.removesuffix(
        " --preflight_only")  # single node: exactly the flags of before, no node flags

    hosts = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=fake, LAUNCHER="deepspeed", HOSTFILE="hosts",
                MASTER_ADDR="10.0.0.1", MERGE="0", NUM_GPUS="8")
    assert hosts.returncode == 0, hosts.stderr
    assert hosts.stdout.splitlines()[2].startswith(
        "-m deepspeed.launcher.runner --hostfile hosts --master_addr 10.0.0.1 --num_gpus 8 --master_port 29500 "
        + DEFAULT_RECIPE)

    for env, message in (({"NNODES": "2"}, "NNODES=2 needs MASTER_ADDR"),
                         ({"HOSTFILE": "hosts"}, "HOSTFILE is for LAUNCHER=deepspeed")):
        bad = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=fake, **env)
        assert bad.returncode == 2 and bad.stderr.strip() == f"error: {message}" + (
            " (the address of the NODE_RANK=0 machine)" if "NNODES" in env else "; torchrun takes NNODES/NODE_RANK")


def fake_gpus(tmp_path: Path, count: int) -> tuple[Path, str]:
    """A PYTHON that answers the launcher's GPU question with `count` (and echoes everything else), and a PATH whose
    nvidia-smi exists (the launcher asks torch only where a GPU driver is installed)."""
    fake = tmp_path / "fake-gpu-python"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then echo {count}; else echo "$*"; fi\n')
    fake.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    return fake, f"{bin_dir}:{os.environ['PATH']}"


def test_train_sh_without_a_gpu_starts_one_cpu_process_in_fp32_and_says_so(tmp_path: Path) -> None:
    """The default settings (NUM_GPUS/BF16/ZERO_CONFIG auto) on a machine with no GPU: no torchrun, no DeepSpeed."""
    proc = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=str(fake_python(tmp_path)), MERGE="0")
    assert proc.returncode == 0, proc.stderr
    chose, command = proc.stdout.splitlines()
    assert chose == ("train.sh: 0 GPU(s) found -> 1 process(es) per machine on CPU, fp32, no DeepSpeed "
                     "(set NUM_GPUS, BF16, ZERO_CONFIG to choose)")
    assert command.startswith(DEFAULT_RECIPE) and "--preflight_only" not in command
    assert "--deepspeed" not in command and "--bf16" not in command


def test_train_sh_with_gpus_starts_one_process_per_gpu_with_the_recipe(tmp_path: Path) -> None:
    fake, path = fake_gpus(tmp_path, 4)
    proc = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=str(fake), PATH=path, MERGE="0")
    assert proc.returncode == 0, proc.stderr
    chose, preflight, launch = proc.stdout.splitlines()
    assert chose.startswith("train.sh: 4 GPU(s) found -> 4 process(es) per machine on GPU, bf16, DeepSpeed zero3")
    assert launch.startswith("-m vlmkit.training.launch --nproc_per_node 4 ")
    assert " --deepspeed zero3 " in launch and "--bf16" in launch.split() and preflight.endswith("--preflight_only")
    bad = run(["sh", str(REPO / "train.sh")], tmp_path, PYTHON=str(fake), PATH=path, NUM_GPUS="two")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: NUM_GPUS=two: a number of processes (1 or more) or auto"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_compare_sh_builds_the_same_command_under_sh_and_bash(shell: str, tmp_path: Path) -> None:
    captions = tmp_path / "captions"
    captions.mkdir()
    for name in ("image_b.json", "image_a.json", "groundTruth.json", "other.json"):
        (captions / name).write_text("[]")
    proc = run([shell, str(REPO / "compare.sh"), "--bootstrap", "0", "--model_name", "x y"], tmp_path,
               PYTHON=str(fake_python(tmp_path)), CAPTION_DIR=str(captions), GROUND_TRUTH=str(tmp_path / "gt.json"),
               OUTPUT_DIR="out", NO_COCO="1")
    assert proc.returncode == 0, proc.stderr
    assert "compare.sh: 2 caption file(s)" in proc.stdout
    command = next(line for line in proc.stdout.splitlines() if "compare.py" in line)
    assert command == (f"{REPO / 'compare.py'} --generated {captions / 'image_a.json'} {captions / 'image_b.json'} "
                       f"--ground_truth {tmp_path / 'gt.json'} --output_dir out --clip_model "
                       "./models/openai/clip-vit-base-patch32 --protocol vlmkit --device auto --batch_size 32 "
                       "--no_coco --bootstrap 0 --model_name x y")  # extra arguments last


def test_eval_vqa_sh_without_a_gpu_runs_one_chunk_on_the_cpu_and_says_so(tmp_path: Path) -> None:
    proc = run(["sh", str(REPO / "eval_vqa.sh"), "--limit", "3"], tmp_path, PYTHON=str(fake_python(tmp_path)),
               TASK="vqa", QUESTIONS="q.jsonl", OUTPUT_DIR=str(tmp_path / "out"), PROGRESS_SECONDS="0.1")
    assert proc.returncode == 0, proc.stderr
    assert "on vqa, 1 chunk(s) on the CPU" in proc.stdout
    log = (tmp_path / "out" / "logs" / "chunk-0-of-1.log").read_text()
    assert log.strip().endswith("--limit 3 --device cpu --chunk_idx 0")
    assert "  answering: chunk 0 starting" in proc.stdout  # the fake answers nothing; a real run shows n/total

    explicit = run(["sh", str(REPO / "eval_vqa.sh")], tmp_path, PYTHON=str(fake_python(tmp_path)), TASK="vqa",
                   QUESTIONS="q.jsonl", OUTPUT_DIR=str(tmp_path / "out2"), GPU_LIST="0,1", PROGRESS_SECONDS="0.1")
    assert "2 chunk(s) on the CPU (GPU_LIST=0,1, but no GPU was found)" in explicit.stdout

    fake, path = fake_gpus(tmp_path, 2)
    gpus = run(["sh", str(REPO / "eval_vqa.sh")], tmp_path, PYTHON=str(fake), PATH=path, TASK="vqa",
               QUESTIONS="q.jsonl", OUTPUT_DIR=str(tmp_path / "out3"), PROGRESS_SECONDS="0.1")
    assert "2 chunk(s) on GPU 0,1" in gpus.stdout and "chunk 1 on GPU 1" in gpus.stdout
