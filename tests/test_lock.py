"""requirements.lock against pyproject.toml, read as text (nothing is installed): every dependency, dev
extra and build requirement of pyproject is locked at a version its specifier admits, every lock entry is
pinned with ``==`` and carries a sha256 hash (``pip install --require-hashes`` refuses it otherwise), and
torch and torchvision are pinned to the same versions in both. Then the same check on synthetic texts,
each broken in one way, to show it fails."""
from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness import environment

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[1]
PINNED_TOGETHER = ("torch", "torchvision")  # a torchvision built for another torch fails to import


def lock_problems(lock_text: str, pyproject: dict) -> list[str]:
    """What is wrong between a lock's text and a parsed pyproject.toml, one line each; [] when nothing."""
    problems, pins = [], {}
    for req, options in environment.lock_entries(lock_text):
        try:
            parsed = Requirement(req)
        except InvalidRequirement:
            problems.append(f"lock entry {req!r}: not a requirement (expected name==version)")
            continue
        specs = list(parsed.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            problems.append(f"lock entry {req!r}: not pinned (expected name==version)")
        elif not any(o.startswith("--hash=sha256:") for o in options):
            problems.append(f"lock entry {req!r}: no --hash=sha256:... (pip --require-hashes refuses it)")
        else:
            pins[canonicalize_name(parsed.name)] = specs[0].version
    project = pyproject["project"]
    wanted = [*project["dependencies"], *project.get("optional-dependencies", {}).get("dev", []),
              *pyproject["build-system"]["requires"]]  # the Makefile builds the project with the locked setuptools
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # not for this interpreter and platform, the ones the lock was resolved for
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"pyproject {text!r}: {name} is not pinned in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"pyproject {text!r}: the lock pins {name}=={pins[name]}, which it does not admit")
    for name in PINNED_TOGETHER:
        exact = [s.version for t in project["dependencies"] for s in Requirement(t).specifier
                 if canonicalize_name(Requirement(t).name) == name and s.operator == "=="]
        if exact != [pins.get(name)]:
            problems.append(f"{name}: pyproject pins {exact or 'no version'} and the lock {pins.get(name)}; "
                            "expected one == pin, the same in both")
    return problems


def test_the_lock_pins_what_pyproject_asks_for_with_hashes():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = (ROOT / environment.LOCK_NAME).read_text()
    assert lock_problems(lock, pyproject) == [], "run `make lock` (see README: A fresh machine) and commit the lock"
    assert len(environment.lock_entries(lock)) > 100  # the whole environment, not the direct dependencies alone


PYPROJECT = {"project": {"dependencies": ["torch==2.14.1", "torchvision==0.29.1", "optuna>=4.0,<6",
                                          "pywin32>=300; sys_platform == 'win32'"],
                         "optional-dependencies": {"dev": ["pytest>=8,<10"]}},
             "build-system": {"requires": ["setuptools>=68"]}}
LOCK = """#
#    make lock
#
optuna==5.1.0 \\
    --hash=sha256:aa \\
    --hash=sha256:ab
    # via harness (pyproject.toml)
pytest==9.2.0 \\
    --hash=sha256:bb
torch==2.14.1 \\
    --hash=sha256:cc
torchvision==0.29.1 \\
    --hash=sha256:dd

# The following packages are considered to be unsafe in a requirements file:
setuptools==84.2.1 \\
    --hash=sha256:ee
"""


def test_a_synthetic_lock_that_agrees_passes():
    assert lock_problems(LOCK, PYPROJECT) == []  # pywin32 is marked for Windows only


@pytest.mark.parametrize("old,new,expected", [
    ("optuna==5.1.0", "optuna==6.0.0", "'optuna>=4.0,<6': the lock pins optuna==6.0.0"),
    ("optuna==5.1.0", "optuna>=5", "'optuna>=5': not pinned"),
    ("pytest==9.2.0 \\\n    --hash=sha256:bb", "pytest==9.2.0", "'pytest==9.2.0': no --hash=sha256"),
    ("pytest==9.2.0 \\\n    --hash=sha256:bb", "pytest==9.2.0 --hash=md5:bb", "'pytest==9.2.0': no --hash=sha256"),
    ("pytest==9.2.0 \\\n    --hash=sha256:bb\n", "", "'pytest>=8,<10': pytest is not pinned in the lock"),
    ("setuptools==84.2.1", "setuptools==67.0", "'setuptools>=68': the lock pins setuptools==67.0"),
    ("torch==2.14.1", "torch==2.15.0", "torch: pyproject pins ['2.14.1'] and the lock 2.15.0"),
    ("torchvision==0.29.1", "torchvision===0.29.1", "'torchvision===0.29.1': not pinned"),
    ("optuna==5.1.0", "optuna=5.1.0", "'optuna=5.1.0': not a requirement"),
])
def test_a_synthetic_lock_broken_one_way_fails_naming_it(old, new, expected):
    assert old in LOCK
    problems = lock_problems(LOCK.replace(old, new), PYPROJECT)
    assert any(expected in p for p in problems), problems


def test_a_torch_range_in_pyproject_fails():
    pyproject = {**PYPROJECT, "project": {**PYPROJECT["project"], "dependencies": [
        "torch>=2.14", "torchvision==0.29.1", "optuna>=4.0,<6"]}}
    assert lock_problems(LOCK, pyproject) == ["torch: pyproject pins no version and the lock 2.14.1; "
                                              "expected one == pin, the same in both"]
