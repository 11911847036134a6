"""What a fresh machine lacks: the suite passes without the system packages it can install.

A clean clone's ``make test`` installs Debian's dataset-fashion-mnist (and chromium) when it runs as
root; elsewhere the tests that need them skip and say why. This machine may already have the
packages, so these tests hide them: ``$HARNESS_SYSTEM_DATASETS`` and ``HOME`` point at empty
folders and ``$HARNESS_DATA`` is unset, and the tests marked ``needs_dataset`` must skip, not fail.
The Makefile's install step is run for real and must do nothing once its packages are there.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data import specs as specs_module

ROOT = Path(__file__).resolve().parents[1]


def _hidden_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_DATA", "PYTEST_ADDOPTS")}
    (tmp_path / "system").mkdir()
    return {**env, "HARNESS_SYSTEM_DATASETS": str(tmp_path / "system"), "HOME": str(tmp_path / "home")}


def test_dataset_tests_skip_cleanly_without_the_datasets(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "needs_dataset",
                          "tests/test_data.py"], cwd=ROOT, env=_hidden_env(tmp_path), capture_output=True, text=True,
                         timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    summary = text.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    skipped = int(re.search(r"(\d+) skipped", summary).group(1))
    assert skipped >= 1 and "passed" not in summary, summary  # every marked test skipped: none found the data
    assert "dataset-fashion-mnist is not installed" in text and "make datasets" in text


def _shim(tmp_path: Path, body: str) -> Path:
    """An apt-get stand-in that records its arguments (and does ``body``), to see what make asks of it."""
    path = tmp_path / "apt-get"
    path.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'apt-calls'}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _make_datasets(**variables) -> subprocess.CompletedProcess:
    args = [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(["make", "-s", "--no-print-directory", "datasets", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def _calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "apt-calls"
    return path.read_text().splitlines() if path.exists() else []


def test_make_datasets_does_nothing_when_the_package_is_there(tmp_path):
    system = specs_module.SYSTEM_DATASETS / "fashion-mnist"
    if not system.is_dir():
        pytest.skip(f"{system} is absent (not root, or apt-get failed): nothing to prove idempotent here")
    apt = _shim(tmp_path, "exit 1")
    for _ in range(2):
        out = _make_datasets(APT_GET=apt)
        assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out
    assert _calls(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="make installs system packages only as root")
def test_make_datasets_installs_once_then_never_again(tmp_path):
    probe = tmp_path / "share" / "fashion-mnist"
    apt = _shim(tmp_path, f'case "$1" in install) mkdir -p {probe};; esac')  # as the package would
    first = _make_datasets(APT_GET=apt, FASHION_MNIST=probe)
    assert first.returncode == 0 and "installing Debian packages: dataset-fashion-mnist" in first.stdout, first
    assert _calls(tmp_path) == ["update -qq", "install -y -qq dataset-fashion-mnist"]
    second = _make_datasets(APT_GET=apt, FASHION_MNIST=probe)
    assert second.returncode == 0 and second.stdout == "", second
    assert len(_calls(tmp_path)) == 2  # nothing asked of apt-get the second time


@pytest.mark.skipif(os.geteuid() != 0, reason="make installs system packages only as root")
def test_make_datasets_that_cannot_install_says_so_and_goes_on(tmp_path):
    apt = _shim(tmp_path, "exit 100")  # apt-get's exit code when it cannot install
    out = _make_datasets(APT_GET=apt, FASHION_MNIST=tmp_path / "absent")
    assert out.returncode == 0, out
    assert "could not install dataset-fashion-mnist: the tests that need them will skip" in out.stdout
