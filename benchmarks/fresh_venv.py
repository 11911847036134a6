"""A fresh venv from requirements.lock holds exactly the locked versions.

Creates a venv in a temporary folder and installs it the way `make demo` and `make test` do, by
running the Makefile's own install rule with ``VENV`` pointed there (``pip install --require-hashes
--no-deps -r requirements.lock``, then the project editable, built with the locked setuptools). Then it
asks the new venv's ``harness env --json`` for every installed distribution and compares them with the
lock: every locked name at its locked version, nothing else but pip and the project itself; and runs
``pip check`` there (the lock installed without dependency resolution must still satisfy every
distribution's own requirements). The install's wall time is recorded; it depends on pip's cache and
on which files lie on local disk (torch and its nvidia-* wheels here). Figure: distributions that
differ from the lock (missing, another version, or not locked), target 0. ``--quick`` checks the
running interpreter's own environment against the lock instead (seconds; no venv is made). Ends with
one JSON line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, loadavg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BESIDE_THE_LOCK = {"pip", "harness"}  # pip comes with every venv; the project is installed from the checkout


def compare(locked: dict[str, str], installed: dict[str, str]) -> dict:
    """The differences between a lock's {name: version} and an environment's, by kind."""
    return {"missing": sorted(n for n in locked if n not in installed),
            "other_version": {n: {"locked": v, "installed": installed[n]} for n, v in sorted(locked.items())
                              if n in installed and installed[n] != v},
            "not_locked": sorted(n for n in installed if n not in locked and n not in BESIDE_THE_LOCK)}


def _install_and_describe(folder: Path, quick: bool) -> tuple:
    """(install seconds, pip check's result, the venv's python, its ``harness env --json``)."""
    install_s, pip_check, python = None, None, Path(sys.executable)
    if not quick:
        venv = folder / "venv"
        start = time.perf_counter()
        make = subprocess.run(["make", "-C", str(ROOT), "install", f"VENV={venv}"], capture_output=True, text=True)
        install_s = round(time.perf_counter() - start, 1)
        if make.returncode != 0:
            raise SystemExit(f"make install VENV={venv} failed ({make.returncode}):\n{make.stdout[-3000:]}{make.stderr[-3000:]}")
        python = venv / "bin" / "python"
        check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
        pip_check = {"rc": check.returncode, "output": check.stdout.strip()[-2000:]}
    described = subprocess.run([str(python), "-m", "harness.cli", "env", "--json"], capture_output=True, text=True,
                               cwd=folder)  # outside the checkout: harness comes from the venv's own install
    if described.returncode != 0:
        raise SystemExit(f"{python} -m harness.cli env --json failed:\n{described.stderr[-3000:]}")
    return install_s, pip_check, python, json.loads(described.stdout)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", default=None, metavar="DIR", help="make the venv in DIR and keep it (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="check this interpreter's environment, make no venv")
    args = ap.parse_args(argv)

    from harness import environment

    lock = ROOT / environment.LOCK_NAME
    locked = environment.locked_versions(lock.read_text())
    load = {"install": {"before": loadavg()}}
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fresh-venv-"))
    try:
        install_s, pip_check, python, env = _install_and_describe(folder, args.quick)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)  # a venv with torch and its CUDA wheels is ~6 GiB
    load["install"]["after"] = loadavg()
    installed = env["distributions"]
    differences = compare(locked, installed)
    count = len(differences["missing"]) + len(differences["other_version"]) + len(differences["not_locked"])
    return emit("distributions_differing_from_lock", count, 0, "lower", differences=differences,
                locked=len(locked), installed=len(installed), install_s=install_s,
                pip_check=pip_check, venv=str(python.parents[1]),
                lock_digest={"file": environment.lock_digest(lock), "reported_by_venv": env["lock_digest"]},
                venv_python=env["python"], venv_pip=env["distributions"].get("pip"),
                venv_torch=env["torch"], kept=bool(args.keep) and not args.quick, quick=args.quick, load=load)


if __name__ == "__main__":
    line = main()
    sys.exit(0 if line["value"] == 0 else 1)
