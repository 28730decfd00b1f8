"""Output primitives: preflight, the exclusive output lock, and the multi-file commit under kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vlmkit import io as vio
from vlmkit.io import InputError, recover_commits, write_all_or_nothing
from vlmkit.outputs import OutputLock, check_output_dir, check_output_file

REPO = Path(__file__).resolve().parent.parent


def test_preflight_refuses_a_file_as_folder_a_folder_as_file_and_an_unwritable_place(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file: --output_dir is a file, not a folder"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(InputError, match=r"cannot be created: .*file is a file"):
        check_output_dir(tmp_path / "file" / "sub")
    with pytest.raises(InputError, match=r"--output is a folder, not a file"):
        check_output_file(tmp_path)
    with pytest.raises(InputError, match=r"not writable"):  # /proc refuses new files, even to root
        check_output_dir("/proc/vlmkit-out")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_second_writer_is_refused_with_the_owner_named_and_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with OutputLock(target):
        info = json.loads((tmp_path / "out.json.lock").read_text())
        assert info["pid"] == os.getpid()
        code = f"from vlmkit.outputs import OutputLock; OutputLock({str(target)!r}).acquire()"
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode != 0 and f"pid {os.getpid()} on" in proc.stderr and "being written by" in proc.stderr
    assert not (tmp_path / "out.json.lock").exists()
    # kill -9 leaves the lock file behind, but the kernel dropped the flock: the next run takes it over.
    code = f"import os; from vlmkit.outputs import OutputLock; OutputLock({str(target)!r}).acquire(); os._exit(9)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 9
    assert (tmp_path / "out.json.lock").exists()
    with OutputLock(target) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


KILLER = textwrap.dedent("""
    import os, sys
    from vlmkit import io
    stop_at = int(sys.argv[2]); steps = []
    def step(name):
        steps.append(name)
        if len(steps) == stop_at:
            os._exit(9)
    io._commit_step = step
    io.write_all_or_nothing({os.path.join(sys.argv[1], n): "new " + n for n in ("a.json", "b.json", "c.txt")})
""")


@pytest.mark.parametrize("stop_at", range(1, 8))
def test_a_kill_at_any_commit_step_leaves_the_old_or_the_new_set_never_a_mix(tmp_path: Path, stop_at: int) -> None:
    names = ("a.json", "b.json", "c.txt")
    write_all_or_nothing({tmp_path / n: "old " + n for n in names})
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path), str(stop_at)], cwd=REPO)
    assert proc.returncode == 9  # 3 staged + manifest + 3 published = 7 steps; each one killed once
    recover_commits(tmp_path)
    contents = {(tmp_path / n).read_text() for n in names}
    expected_new = stop_at >= 4  # from the manifest on, the new set is committed
    assert contents == {("new " if expected_new else "old ") + n for n in names}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no staging files left


def test_the_next_writer_recovers_a_killed_commit_before_writing(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def die_after_first_publish(step: str) -> None:
        calls.append(step)
        if step.startswith("published"):
            raise KeyboardInterrupt

    monkeypatch.setattr(vio, "_commit_step", die_after_first_publish)
    with pytest.raises(KeyboardInterrupt):
        write_all_or_nothing({tmp_path / "x": "1", tmp_path / "y": "2"})
    monkeypatch.setattr(vio, "_commit_step", lambda step: None)
    assert (tmp_path / "x").read_text() == "1" and not (tmp_path / "y").exists()  # the mix, before recovery
    write_all_or_nothing({tmp_path / "z": "3"})
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"x": "1", "y": "2", "z": "3"}
