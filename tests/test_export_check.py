"""Export for engines: merge_lora_weights.py output has a layout vLLM loads, and an adapter that matches no module of
its base is refused before anything loads (the silent base-model trap), on a tiny Qwen2.5-VL and crafted adapters."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

import merge_lora_weights
from vlmkit.generation.export_check import (
    check_engine_layout,
    engine_layout_problems,
    refuse_unmatched_adapter,
    unmatched_adapter_problem,
)
from vlmkit.io import InputError


@pytest.fixture(scope="module")
def lora(tiny_qwen2_5_vl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A peft LoRA on the tiny model's attention projections, with non-zero B so the merge changes weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_qwen2_5_vl_dir))
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.02)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(str(out))
    return out


def crafted(adapter: Path, dst: Path, **changes) -> Path:
    shutil.copytree(adapter, dst)
    config = json.loads((dst / "adapter_config.json").read_text())
    config.update(changes)
    (dst / "adapter_config.json").write_text(json.dumps(config))
    return dst


def test_the_merge_is_engine_ready_and_a_no_match_adapter_is_refused_first(
        lora: Path, tiny_qwen2_5_vl_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert unmatched_adapter_problem(tiny_qwen2_5_vl_dir, lora) is None
    caplog.set_level(logging.INFO)
    merged = tmp_path / "merged"
    assert merge_lora_weights.main(["--adapter", str(lora), "--output_dir", str(merged),
                                    "--base_model", str(tiny_qwen2_5_vl_dir)]) == 0
    assert engine_layout_problems(merged) == ([], [])
    assert "layout loadable by vLLM's own model classes (Qwen2_5_VLForConditionalGeneration" in caplog.text
    check_engine_layout(merged)

    nothing = crafted(lora, tmp_path / "no-match", target_modules=["to_q", "to_v"])
    problem = unmatched_adapter_problem(tiny_qwen2_5_vl_dir, nothing)
    assert problem.startswith("target_modules (to_q, to_v) match none of the ")
    assert problem.endswith("an engine would serve the base model unchanged")
    out = tmp_path / "never"
    with pytest.raises(InputError, match=r"no-match: target_modules \(to_q, to_v\) match none of the"):
        merge_lora_weights.main(["--adapter", str(nothing), "--output_dir", str(out),
                                 "--base_model", str(tiny_qwen2_5_vl_dir)])
    assert not out.exists()
    regex = crafted(lora, tmp_path / "regex", target_modules=r".*\.attn\.nothing")
    with pytest.raises(InputError, match="match none of the"):
        refuse_unmatched_adapter(tiny_qwen2_5_vl_dir, regex)
    # excluded modules count as no match: peft would wrap nothing either
    excluded = crafted(lora, tmp_path / "excluded", exclude_modules=["q_proj", "v_proj"])
    assert "match none of the" in unmatched_adapter_problem(tiny_qwen2_5_vl_dir, excluded)
    regex_ok = crafted(lora, tmp_path / "regex-ok", target_modules=r".*self_attn\.q_proj")
    assert unmatched_adapter_problem(tiny_qwen2_5_vl_dir, regex_ok) is None


def test_layout_problems_peft_leftovers_custom_code_unknown_architecture(tiny_qwen2_5_vl_dir: Path,
                                                                        tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "unmerged"
    folder.mkdir()
    config = json.loads((tiny_qwen2_5_vl_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["MyVLM"],
                                                    "auto_map": {"AutoModel": "modeling_my.MyVLM"}}))
    save_file({"model.multi_modal_projector.modules_to_save.default.weight": torch.zeros(2, 2),
               "model.multi_modal_projector.original_module.weight": torch.zeros(2, 2),
               "lm_head.weight": torch.zeros(2, 2)}, str(folder / "model.safetensors"))
    problems, warnings = engine_layout_problems(folder)
    assert problems == [
        "config.json has auto_map (AutoModel): the model needs custom code (trust_remote_code) instead of vLLM's "
        "own classes",
        "2 weights are peft leftovers, not merged weights (e.g. model.multi_modal_projector.modules_to_save.default."
        "weight); merge the adapter with merge_lora_weights.py"]
    assert warnings == ["architecture MyVLM is not among the vision-language models of vLLM 0.11's registry"]
    with pytest.raises(InputError, match=r"not loadable by vLLM as it is: config.json has auto_map .* \(and 1 more\)"):
        check_engine_layout(folder)
