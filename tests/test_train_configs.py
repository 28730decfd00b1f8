"""The shipped DeepSpeed configs: valid JSON, and every "auto" is one the HF integration fills.

An "auto" the integration does not fill (e.g. zero_optimization.allgather_bucket_size) fails only when the
Trainer prepares DeepSpeed, after the model is loaded, so it is pinned here without running DeepSpeed.
"""

from __future__ import annotations

import json

import pytest

from vlmkit.training.trainer import CONFIG_DIR, offload_devices, resolve_deepspeed_config

# Filled by transformers.integrations.deepspeed.HfTrainerDeepSpeedConfig (trainer_config_process/_finalize).
HF_FILLED = {
    "train_micro_batch_size_per_gpu", "train_batch_size", "gradient_accumulation_steps", "gradient_clipping",
    "bf16.enabled", "fp16.enabled", "zero_optimization.reduce_bucket_size",
    "zero_optimization.stage3_prefetch_bucket_size", "zero_optimization.stage3_param_persistence_threshold",
}


def auto_keys(config: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in config.items():
        if isinstance(value, dict):
            found |= auto_keys(value, f"{prefix}{key}.")
        elif value == "auto":
            found.add(prefix + key)
    return found


@pytest.mark.parametrize(("name", "stage", "offload"), [("zero2", 2, False), ("zero3", 3, False),
                                                          ("zero3_offload", 3, True)])
def test_shipped_configs_only_use_autos_the_trainer_fills(name, stage, offload):
    path = resolve_deepspeed_config(name)
    assert path == CONFIG_DIR / f"{name}.json"
    config = json.loads(path.read_text())
    assert config["zero_optimization"]["stage"] == stage
    assert bool(offload_devices(config)) == offload
    assert auto_keys(config) <= HF_FILLED
    assert "optimizer" not in config and "scheduler" not in config  # the Trainer's AdamW with our param groups
    if stage == 3:
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
