"""A wheel built from the repository works on its own (issue 23, part 7): it carries the sweep catalog, the
published values and the notebooks, installs the report package as harness_analysis and no top-level
``analysis``, and, installed into a folder of its own and run outside the checkout, ``harness list`` shows
every shipped sweep and an artifact resolves to its builder, both read from the installed files.

The wheel is built offline with the venv's setuptools (``pip wheel --no-deps --no-build-isolation``) from a
copy of what pyproject.toml packages, so no ``build/`` left in the checkout (whose stale files setuptools
would pack) decides what is in it. The full ``harness reproduce jiang-table-4-9 --profile smoke`` from the
installed wheel takes about a minute on 2 cores (Ray, six trials), so this file stops at resolving.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness import catalog
from harness_analysis import published

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "harness", "analysis", "sweeps")  # what pyproject.toml packages


def _pip(*args, cwd=None):
    out = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                         env={**os.environ, "PIP_NO_INDEX": "1"}, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), ".", cwd=src)
    (found,) = dist.glob("harness-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("target")
    _pip("install", "--no-deps", "--target", str(target), str(wheel))
    return target


def _run(installed: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess:
    """``command`` with only the installed copy on PYTHONPATH, in a folder outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_SWEEPS", "MLFLOW_TRACKING_URI")}
    out = subprocess.run(command, cwd=cwd, env={**env, "PYTHONPATH": str(installed)}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_the_wheel_carries_sweeps_published_values_and_notebooks_and_no_top_level_analysis(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        **{f"harness/{p.relative_to(ROOT / 'harness').as_posix()}": p for p in (ROOT / "harness").rglob("*.py")},
        **{f"harness/sweeps/{p.name}": p for p in (ROOT / "sweeps").glob("*.yaml")},
        **{f"harness_analysis/{p.relative_to(ROOT / 'analysis').as_posix()}": p
           for pattern in ("*.py", "published/*.py", "published/*.yaml", "notebooks/*.ipynb")
           for p in (ROOT / "analysis").glob(pattern)},
    }
    assert len([n for n in shipped if n.startswith("harness/sweeps/")]) == len(list((ROOT / "sweeps").glob("*.yaml")))
    assert {"harness_analysis/notebooks/jiang.ipynb", "harness_analysis/published/jiang.yaml"} <= set(shipped)
    assert set(shipped) <= names, sorted(set(shipped) - names)
    assert not [n for n in names if n.split("/")[0] not in ("harness", "harness_analysis", "harness-0.1.0.dist-info")]
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["harness", "harness_analysis"]


def test_the_installed_harness_list_shows_every_shipped_sweep(installed, tmp_path):
    out = _run(installed, tmp_path, str(installed / "bin" / "harness"), "list", "--json")
    listed = json.loads(out.stdout)
    assert sorted(r["id"] for r in listed) == sorted(catalog.all_artifacts())  # the checkout's own catalog
    assert {r["sweep"] for r in listed} == {f"sweeps/{p.name}" for p in (ROOT / "sweeps").glob("*.yaml")}
    assert not (tmp_path / "mlflow.db").exists()  # listing creates no store


def test_an_artifact_resolves_to_the_installed_sweep_and_builder(installed, tmp_path):
    probe = """
import json, sys
from importlib import resources
import harness, harness_analysis
from harness import catalog
from harness_analysis import published
sweep, artifacts = catalog.resolve("jiang-table-4-9")
builders = [catalog.report_function(a) for a in artifacts]
print(json.dumps({
    "files": [harness.__file__, harness_analysis.__file__, str(sweep.path), str(catalog.sweeps_dir()),
              str(published.HERE)] + [sys.modules[f.__module__].__file__ for f in builders],
    "builders": [f"{f.__module__}:{f.__name__}" for f in builders],
    "rows": len(published.table("jiang", "4-9")["rows"]),
    "notebook": resources.files("harness_analysis").joinpath("notebooks", "jiang.ipynb").is_file(),
    "old_name": sorted(m for m in sys.modules if m.split(".")[0] == "analysis"),
}))
"""
    out = json.loads(_run(installed, tmp_path, sys.executable, "-c", probe).stdout)
    for path in out["files"]:
        assert Path(path).is_relative_to(installed), path  # the wheel's files, not the checkout's
    assert out["builders"] == ["harness_analysis.jiang:make_performance_table"]
    assert out["rows"] == len(published.table("jiang", "4-9")["rows"]) and out["notebook"] and out["old_name"] == []
