"""CI is a fresh machine: every top-level requirement is pinned (a fresh venv gets what CI tested), and .ci/run builds
its own virtual environment and runs the README's test command with that environment's interpreter."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_top_level_requirement_is_pinned() -> None:
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    assert requirements, "requirements.txt is empty"
    unpinned = [line for line in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", line)]
    assert unpinned == []
    names = [line.split("==")[0].lower() for line in requirements]
    assert "pytest" in names and "ruff" in names  # test tooling too: pytest 9.2 changed pytest.approx
    assert len(names) == len(set(names))


def test_ci_builds_a_fresh_venv_and_tests_with_its_interpreter() -> None:
    script = (REPO / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    venv = next(i for i, line in enumerate(commands) if line.startswith("python3 -m venv"))
    path = next(i for i, line in enumerate(commands) if line.startswith('export PATH="$VENV/bin:$PATH"'))
    install = commands.index("python -m pip install -q -r requirements.txt")
    assert venv < path < install < commands.index("python -m ruff check .") < commands.index("python -m pytest -q")
    readme = (REPO / "README.md").read_text()
    assert "python -m pytest -q " in readme and "pip install -r requirements.txt" in readme
