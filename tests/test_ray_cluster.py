"""Two machines, shown on one: a Ray head on 127.0.0.1 and a second node (`ray start --address`, its own temp
folder and resources) run the filter and tiny-model captioning with --ray_address 127.0.0.1:PORT; the work lands
on both nodes, and exactly the Ray processes this test started are stopped (never `ray stop`, which would stop
every Ray on the machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import qwen
from dataprocess import filter as dp_filter
from tests.fixtures.caption_data import write_jsonl
from tests.test_streams import RECIPE, rows
from vlmkit.io import read_json

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_under(folder: str) -> list[psutil.Process]:
    """Every process whose command line names `folder` (Ray passes its temp/session folder to each daemon)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(folder in arg for arg in p.info["cmdline"] or []):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def stop(folders: list[str]) -> None:
    procs = [p for f in folders for p in processes_under(f)]
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="module")
def two_nodes():
    import secrets

    # Ray 2.60 heads ask joining nodes and drivers for a token: one random token for this cluster, in the
    # environment of the nodes and of the drivers (the CLIs run in subprocesses: a Ray process caches its token, so
    # this pytest process, which may have run a local Ray already, cannot be a driver here). Nothing goes to ~/.ray.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    head_tmp, node_tmp = tempfile.mkdtemp(prefix="vrh", dir="/tmp"), tempfile.mkdtemp(prefix="vrn", dir="/tmp")
    port = free_port()
    address = f"127.0.0.1:{port}"
    try:
        subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                        "--num-cpus", "1", "--num-gpus", "0", "--include-dashboard", "false", "--temp-dir", head_tmp,
                        "--disable-usage-stats", "--resources", json.dumps({"head_node": 1})],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                        "--num-gpus", "0", "--temp-dir", node_tmp, "--resources", json.dumps({"second_node": 1})],
                       env=env, check=True, capture_output=True, timeout=120)
        time.sleep(2)
        yield address, env
    finally:
        stop([head_tmp, node_tmp])
        assert processes_under(head_tmp) == [] and processes_under(node_tmp) == []
        shutil.rmtree(head_tmp, ignore_errors=True)
        shutil.rmtree(node_tmp, ignore_errors=True)


def cli(env: dict, *argv: str) -> int:
    """A driver: the command as a user runs it, in its own process."""
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, timeout=900).returncode


def test_filter_and_captioning_run_on_both_nodes(two_nodes, tmp_path: Path, tiny_qwen2_5_vl_dir: Path,
                                                 examples_copy: Path) -> None:
    address, env = two_nodes
    data = write_jsonl(tmp_path / "data.jsonl", rows(tmp_path) * 4)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    common = ["--recipe", str(recipe), "--dataset_path", str(data), "--no_progress", "--chunk_size", "4"]
    assert dp_filter.main([*common, "--export_path", str(tmp_path / "local" / "kept.jsonl"), "--np", "1"]) == 0
    assert cli(env, "-m", "dataprocess.filter", *common, "--export_path", str(tmp_path / "ray" / "kept.jsonl"),
               "--executor", "ray", "--ray_address", address, "--num_workers", "2") == 0
    for name in ("kept.jsonl", "kept_stats.jsonl", "kept_dropped.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert len(json.loads((tmp_path / "ray" / "kept_summary.json").read_text())["nodes"]) == 2

    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Describe the vase ({views_phrase}).")
    images = examples_copy / "multiview_images"
    for folder in sorted(images.iterdir()):  # 18 objects: the second actor, loading its model later, gets work too
        for k in (1, 2):
            shutil.copytree(folder, images / f"{k}{folder.name[1:]}")
    argv = ["--model_path", str(tiny_qwen2_5_vl_dir), "--input_dir", str(images),
            "--max_new_tokens", "4", "--min_pixels", "784", "--max_pixels", "3136", "--prompt_file", str(prompt),
            "--no_progress", "--batch_size", "1"]
    assert qwen.main([*argv, "--output_dir", str(tmp_path / "cap_local")]) == 0
    assert cli(env, "qwen.py", *argv, "--output_dir", str(tmp_path / "cap_ray"), "--executor", "ray",
               "--ray_address", address, "--num_workers", "2") == 0
    name = "image_Qwen2.5-VL-tiny.json"
    assert read_json(tmp_path / "cap_ray" / name) == read_json(tmp_path / "cap_local" / name)
    report = read_json(tmp_path / "cap_ray" / "Qwen2.5-VL-tiny_caption_generation_report.json")
    assert len(report["settings"]["backend"]["ray_nodes"]) == 2  # one actor per 1-CPU node
