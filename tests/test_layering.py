"""The layering rule (CONTRIBUTING.md): nothing outside tests/ imports the tests package or an entry script."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRY_SCRIPTS = {p.stem for p in REPO.glob("*.py")}


def product_modules() -> list[Path]:
    files = [p for p in REPO.rglob("*.py") if "tests" not in p.relative_to(REPO).parts[:1]]
    return [p for p in files if not any(part.startswith(".") for part in p.relative_to(REPO).parts)]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_outside_tests_imports_tests() -> None:
    offenders = [f"{p.relative_to(REPO)}: {m}" for p in product_modules() for m in imported_modules(p)
                 if m == "tests" or m.startswith("tests.")]
    assert offenders == []


def test_package_code_never_imports_an_entry_script() -> None:
    package_files = [p for p in product_modules() if p.relative_to(REPO).parts[0] in ("vlmkit", "dataprocess")]
    assert package_files, "the package was not found"
    offenders = [f"{p.relative_to(REPO)}: {m}" for p in package_files for m in imported_modules(p)
                 if m.split(".")[0] in ENTRY_SCRIPTS]
    assert offenders == []


def test_only_the_downloader_imports_the_hub_package() -> None:
    """`vlmkit.hub` (download_models.py's downloading and --check table) sits on top of the product: the loaders and
    everything else read the registry from `vlmkit.model_registry` and check folders with `vlmkit.models`, below
    it. Only vlmkit/hub itself and download_models.py may import `vlmkit.hub` (tests may too)."""
    allowed = {REPO / "download_models.py"}
    offenders = [f"{p.relative_to(REPO)}: {m}" for p in product_modules() for m in imports_with_names(p)
                 if (m == "vlmkit.hub" or m.startswith("vlmkit.hub.")) and p not in allowed
                 and p.relative_to(REPO).parts[:2] != ("vlmkit", "hub")]
    assert offenders == []


def imports_with_names(path: Path) -> set[str]:
    """`imported_modules`, plus `from vlmkit import hub` as `vlmkit.hub`."""
    names = imported_modules(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


PRODUCT_ROOTS = ("vlmkit", "dataprocess")


def test_the_product_never_imports_the_demo_package() -> None:
    """Demo makers (tiny models, procedural vases, the OpenAI stand-in) live in demo/ for tours, tests and
    benchmarks; the package and the entry scripts must work without it (issue 18)."""
    files = [p for p in product_modules()
             if p.relative_to(REPO).parts[0] in PRODUCT_ROOTS or p.parent == REPO]
    offenders = [f"{p.relative_to(REPO)}: {m}" for p in files for m in imported_modules(p)
                 if m == "demo" or m.startswith("demo.")]
    assert len(files) > 100 and offenders == []
    assert not (REPO / "vlmkit" / "tiny").exists() and not (REPO / "vlmkit" / "render" / "procedural.py").exists()


def test_the_training_orchestration_stays_small() -> None:
    """vlmkit/training/run.py only orders the steps; data preparation, model loading, resuming and the summary live
    in modules of their own (prepare, model, checkpoint, summary; issue 18)."""
    lines = (REPO / "vlmkit" / "training" / "run.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"vlmkit/training/run.py has {lines} lines"
