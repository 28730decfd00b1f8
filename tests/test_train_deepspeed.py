"""The real ZeRO-3 path: `sh train.sh --tiny` with 2 CPU processes (torchrun, gloo), then the merge it runs.

DeepSpeed JIT-compiles a communication op the first time (about 30-60 s on 2 cores); TORCH_EXTENSIONS_DIR keeps
it in ~/.cache/torch_extensions (as .ci/run does), so later runs take about 30 s.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_zero3_on_two_processes_saves_a_full_adapter_that_loads(tmp_path, repo_root):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    env = dict(os.environ, TINY_DIR=str(tmp_path), TINY_NUM_GPUS="2", TINY_ZERO_CONFIG="zero3",
               MASTER_PORT=str(free_port()), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHON=sys.executable)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions"))
    proc = subprocess.run(["sh", "train.sh", "--tiny"], cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "output"

    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 6
    assert json.loads((out / "vlmkit_training.json").read_text())["deepspeed"].endswith("zero3.json")
    for folder in (out / "checkpoint-3", out):
        tensors = load_file(str(folder / "adapter_model.safetensors"))
        assert any("lora_B" in k for k in tensors) and any("multi_modal_projector" in k for k in tensors)
        assert all(t.numel() > 0 for t in tensors.values())  # gathered from both ranks, not empty shards
        assert any(t.abs().sum() > 0 for k, t in tensors.items() if "lora_B" in k)  # LoRA B trained away from 0
    assert (out / "checkpoint-3" / "global_step3").is_dir()  # DeepSpeed's own state, for resuming
    # Marked complete only after both ranks wrote their shards (the marker lists them); eval ran on both ranks.
    from vlmkit.training.checkpoint import checkpoint_problem

    files = json.loads((out / "checkpoint-3" / "vlmkit_training.json").read_text())["files"]
    assert checkpoint_problem(out / "checkpoint-3") is None
    assert {"global_step3/zero_pp_rank_0_mp_rank_00_optim_states.pt",
            "global_step3/zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= set(files)
    assert [step for step, _ in summary["eval_losses"]] == [3, 6]

    base = AutoModelForImageTextToText.from_pretrained(out / "base")
    base_projector = base.model.multi_modal_projector.linear_1.weight.clone()
    model = PeftModel.from_pretrained(base, out)
    trained = model.base_model.model.model.multi_modal_projector.modules_to_save["default"].linear_1.weight
    assert not torch.allclose(trained, base_projector)

    merged = tmp_path / "output-merged"
    assert AutoModelForImageTextToText.from_pretrained(merged).config.model_type == "llava"
    assert AutoProcessor.from_pretrained(merged).image_token == "<image>"
