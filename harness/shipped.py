"""Where the sweep catalog and the report package are: in a checkout, or in an installed wheel.

The repository keeps them at its top beside harness/ (README: Layout): ``sweeps/`` and ``analysis/``. A
wheel installs them under names no other distribution takes (pyproject.toml's ``package-dir``): the
folder analysis/ as the package ``harness_analysis``, the sweep files as the package data
``harness/sweeps/*.yaml``. Imported from a checkout (an editable install, or the repository on
PYTHONPATH, as a Ray job's working_dir or a bare python3 has it), harness reads the checkout's own
folders, so an edit shows at once: ``sweeps_dir()`` is its sweeps/, and ``harness_analysis`` its
analysis/ (``use_checkout``, run when harness is imported).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Optional

ANALYSIS = "harness_analysis"  # the package the folder analysis/ installs as
OLD_ANALYSIS = "analysis"  # its name before issue 23, which a user's sweep file may still write in a report
ROOT = Path(__file__).resolve().parents[1]


def checkout() -> Optional[Path]:
    """The repository harness is imported from; None for an installed copy (whose parent folder is
    site-packages, where an ``analysis/`` would be some other distribution's)."""
    marks = (ROOT / "pyproject.toml", ROOT / "sweeps", ROOT / "analysis" / "__init__.py")
    return ROOT if all(p.exists() for p in marks) else None


def sweeps_dir() -> Path:
    """$HARNESS_SWEEPS, else the checkout's sweeps/, else the sweep files the installed wheel ships."""
    if os.environ.get("HARNESS_SWEEPS"):
        return Path(os.environ["HARNESS_SWEEPS"])
    return builtin_sweeps_dir()


def builtin_sweeps_dir() -> Path:
    """The sweep files harness ships: the checkout's sweeps/, else the installed wheel's."""
    root = checkout()
    return root / "sweeps" if root else Path(str(resources.files("harness").joinpath("sweeps")))


class _CheckoutAnalysis(importlib.abc.MetaPathFinder):
    """``harness_analysis`` is the checkout's analysis/ folder, ahead of any installed copy; its submodules
    are then found along the package's ``__path__`` (the folder), each imported once under its one name."""

    def __init__(self, folder: Path):
        self.folder = folder

    def find_spec(self, name, path=None, target=None):
        if name != ANALYSIS:
            return None
        return importlib.util.spec_from_file_location(name, self.folder / "__init__.py",
                                                      submodule_search_locations=[str(self.folder)])


def use_checkout() -> None:
    """From a checkout, ``import harness_analysis`` imports the analysis/ beside this harness: what an editable
    install maps it to, and with only the repository on PYTHONPATH nothing else would find it."""
    root = checkout()
    if root and not any(isinstance(f, _CheckoutAnalysis) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutAnalysis(root / "analysis"))


_said: set = set()  # the sweep files whose old report names were already reported, once per process


def current_report(report: str, sweep_file: str) -> str:
    """A report's ``module:function`` as it imports now: ``analysis.<x>:f``, written before the package's rename,
    is ``harness_analysis.<x>:f`` where that is one of its modules, with one deprecation line on stderr per sweep
    file; anything else as written (a user's own package may be called analysis)."""
    head, dot, rest = report.partition(".")
    if head != OLD_ANALYSIS:
        return report
    new = ANALYSIS + dot + rest
    try:
        if importlib.util.find_spec(new.partition(":")[0]) is None:
            return report
    except ImportError:  # find_spec imports the parents: harness_analysis.x.y where x is no package
        return report
    if sweep_file not in _said:
        _said.add(sweep_file)
        print(f"harness: deprecated: {sweep_file}: report {report} is {new} now (the package {OLD_ANALYSIS} was "
              f"renamed {ANALYSIS}); rename its {OLD_ANALYSIS}.* reports", file=sys.stderr)
    return new
