"""What a result was computed from: task, prompt, decoding, model, adapter and the dataset file's hash.

Two results are comparable when their signatures agree on everything but the model; `--resume` and `--merge` refuse
chunk files whose signatures differ (a chunk answered by another model, prompt or dataset version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmkit.vqa.tasks import TaskData, file_sha256

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def model_identity(name: str, model_path: str, adapter_path: str | None) -> dict[str, Any]:
    """Paths plus hashes of what is cheap to hash: the base's config.json and the adapter's weights."""
    model = Path(model_path).expanduser().resolve()
    out: dict[str, Any] = {"name": name, "model_path": str(model), "config_sha256": file_sha256(model / "config.json"),
                           "adapter_path": None, "adapter_sha256": None}
    if adapter_path:
        adapter = Path(adapter_path).expanduser().resolve()
        weights = adapter / ADAPTER_WEIGHTS
        out.update(adapter_path=str(adapter), adapter_sha256=file_sha256(weights) if weights.is_file() else None)
    return out


def predictions_identity(path: Path) -> dict[str, Any]:
    return {"file": str(path.resolve()), "sha256": file_sha256(path)}


def run_signature(data: TaskData, *, model: dict[str, Any], decoding: dict[str, Any] | None = None,
                  predictions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "task": data.task,
        "dataset": {"file": str(data.source.resolve()), "sha256": data.sha256, "questions": len(data.questions),
                    "limit": data.options["limit"]},
        "prompt": {"template": data.template, "ocr": data.options["ocr"],
                   "ocr_file": data.options["ocr_file"]},
        "decoding": decoding,
        "model": model,
        "predictions": predictions,
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def differing_keys(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ, e.g. ["model.adapter_sha256", "prompt.template"]."""
    fa, fb = _flatten(a), _flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [k for k in keys if fa.get(k) != fb.get(k) and not k.startswith(ignore)]
