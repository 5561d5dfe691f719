"""The package's layering (pyproject.toml, [tool.importlinter]): imports point down only."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """Run import-linter with the project's contract on the ``regbench`` package under ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                           "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, env=env, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_layers():
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is not vacuous: a core module importing the runner is reported."""
    copy = tmp_path / "regbench"
    shutil.copytree(ROOT / "regbench", copy, ignore=shutil.ignore_patterns("__pycache__"))
    geometry = copy / "geometry.py"
    geometry.write_text(geometry.read_text() + "\n\ndef _upward():\n    from . import runner  # noqa\n")
    out = lint_imports(tmp_path)
    assert out.returncode != 0
    assert "regbench.geometry -> regbench.runner" in out.stdout
