"""examples/plugin: the worked plugin example (a model, knowledge distillation on the loss event, a report
builder and its sweep file), installed as a user installs it and run as a user runs it.

The loss is checked against the formula by hand. The package is pip-installed (offline, into a folder
of its own) and its entry point found through its dist-info on PYTHONPATH by `harness` subprocesses: the
grid, the search, the reports, a bad option refused before Ray. On a two-node Ray cluster on loopback
the same sweep runs with the package named as a path plugin, on no node's PYTHONPATH, shipped by Ray's
``runtime_env`` py_modules. Nothing here imports the package into the test process's registries.
"""
from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import launches, procs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"
SWEEP = EXAMPLE / "kd_digits.yaml"
GRID, SEARCH = f"{SWEEP}#kd_digits", f"{SWEEP}#kd_digits_search"
SMOKE_EPOCHS = [1, 2]


def _loss_module():
    """harness_kd/loss.py alone (torch only): its package's __init__ would register into this process's registries."""
    spec = importlib.util.spec_from_file_location("example_kd_loss", EXAMPLE / "harness_kd" / "loss.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the loss, against the formula by hand --------------------------------------------------------------

def test_kd_loss_is_the_formula():
    import torch
    import torch.nn.functional as F

    kd = _loss_module()
    student = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    teacher = torch.tensor([[1.0, 1.0, 0.0], [-2.0, 0.5, 2.5]])
    y = torch.tensor([0, 2])
    ce = F.cross_entropy(student, y)
    # alpha = 0: plain cross-entropy, whatever the teacher says
    assert torch.allclose(kd.kd_loss(student, teacher, y, alpha=0.0, temperature=4.0), ce)

    def by_hand(T: float) -> float:  # T^2 * mean over the batch of sum_c p_t (log p_t - log p_s)
        total = 0.0
        for s_row, t_row in zip(student.tolist(), teacher.tolist()):
            zs, zt = sum(math.exp(v / T) for v in s_row), sum(math.exp(v / T) for v in t_row)
            ps, pt = [math.exp(v / T) / zs for v in s_row], [math.exp(v / T) / zt for v in t_row]
            total += sum(b * (math.log(b) - math.log(a)) for a, b in zip(ps, pt))
        return T * T * total / len(student)

    for T in (1.0, 2.0, 4.0):
        assert kd.soft_term(student, teacher, T).item() == pytest.approx(by_hand(T), rel=1e-5)
    alpha, T = 0.7, 2.0
    expected = (1 - alpha) * ce.item() + alpha * by_hand(T)
    assert kd.kd_loss(student, teacher, y, alpha, T).item() == pytest.approx(expected, rel=1e-5)
    # the T^2 factor: the soft term is T^2 times the plain KL at temperature T
    plain_kl = F.kl_div(F.log_softmax(student / 4.0, 1), F.softmax(teacher / 4.0, 1), reduction="batchmean")
    assert kd.soft_term(student, teacher, 4.0).item() == pytest.approx(16.0 * plain_kl.item(), rel=1e-5)
    # the loop's own loss replaces the cross-entropy it would compute; equal distributions add nothing
    assert kd.kd_loss(student, teacher, y, 1.0, 3.0, hard=torch.tensor(99.0)).item() == pytest.approx(
        kd.soft_term(student, teacher, 3.0).item())
    assert kd.soft_term(student, student, 5.0).item() == pytest.approx(0.0, abs=1e-6)


# ---- installed as a user installs it: pip, offline, into a folder of its own --------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example pip-installed into ``site`` (a copy built: an in-tree build would write build/ and
    egg-info into examples/plugin); the environment of a `harness` process that finds its entry point."""
    root = tmp_path_factory.mktemp("example_plugin")
    source = root / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(root / "site"), str(source)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PIP_NO_INDEX": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (root / "site" / "harness_kd_example-0.1.0.dist-info" / "entry_points.txt").read_text().split() == [
        "[harness.plugins]", "kd", "=", "harness_kd"]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "site"), str(ROOT)]), "RAY_AUTH_MODE": "disabled"}


def _harness(env: dict, cwd: Path, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(launches.harness(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("setting, words", [
    ("method.options.temperature=0", ["method.options.temperature=0", "a number > 0"]),
    ("method.options.teacher.options.width=wide", ["method.options.teacher.options.width='wide'", "a finite number"]),
])
def test_a_bad_kd_option_is_exit_2_before_ray(installed, tmp_path, setting, words):
    done = _harness(installed, tmp_path, "run", SEARCH, "--profile", "smoke", "--set", setting,
                    "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def _finished(uri: str, experiment: str, names: list[str]) -> dict:
    """The trials' runs (a search's parent run left out), each FINISHED with every epoch logged once."""
    runs = {name: r for name, r in launches.runs(uri, experiment).items() if not name.startswith("search-")}
    assert sorted(runs) == sorted(names), sorted(runs)
    for name, run in runs.items():
        assert run.info.status == "FINISHED", (name, run.data.tags)
        assert launches.epochs(uri, run) == SMOKE_EPOCHS, name  # every epoch logged, once
    return runs


@pytest.mark.slow
def test_the_installed_example_runs_its_grid_and_search_and_reports(installed, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**installed, "HARNESS_RAY_RESULTS": str(tmp_path / "ray")}
    done = _harness(env, tmp_path, "run", GRID, "--profile", "smoke", "--tracking-uri", uri, "--quiet", timeout=500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    grid = _finished(uri, "kd_digits", ["baseline-seed0", "baseline-seed1", "KD-seed0", "KD-seed1"])
    for name, run in grid.items():
        params, metrics = run.data.params, run.data.metrics
        assert params["model.name"] == "tiny_cnn" and params["model.options.channels"] == "8"
        if name.startswith("KD"):
            assert params["method.name"] == "kd" and params["method.options.alpha"] == "0.7"
            assert params["method.options.teacher.name"] == "digits_cnn"
            assert 0 <= metrics["teacher_val_acc"] <= 100 and metrics["teacher_train_time_s"] > 0
        else:
            assert params["method.name"] == "none" and "teacher_val_acc" not in metrics

    done = _harness(env, tmp_path, "run", SEARCH, "--profile", "smoke", "--tracking-uri", uri, "--quiet", timeout=500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    samples = _finished(uri, "kd_digits_search", [f"sample{i:03d}-seed0" for i in (1, 2, 3)])
    parents = {r.data.tags.get("mlflow.parentRunId") for r in samples.values()}
    assert len(parents) == 1 and None not in parents  # one parent run groups the search's trials
    alphas = {float(r.data.params["method.options.alpha"]) for r in samples.values()}
    assert len(alphas) == 3 and all(0.1 <= a <= 0.9 for a in alphas), alphas
    assert {r.data.params["method.name"] for r in samples.values()} == {"kd"}

    # the plugin's report builder renders both; a value from the store appears in the grid's table
    from harness_analysis.report import mean_std
    import pandas as pd

    for target, artifact in ((GRID, "kd-digits"), (SEARCH, "kd-digits-search")):
        done = _harness(env, tmp_path, "report", target, "--tracking-uri", uri, "--out", tmp_path / "reports")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert (tmp_path / "reports" / f"{artifact}.md").is_file()
    table = (tmp_path / "reports" / "kd-digits.md").read_text()
    kd = pd.Series([grid[f"KD-seed{s}"].data.metrics["test_acc_at_best_val"] for s in (0, 1)])
    teacher = pd.Series([grid[f"KD-seed{s}"].data.metrics["teacher_val_acc"] for s in (0, 1)])
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in table.splitlines() if line.startswith("| ")}
    assert cells["KD"][:3] == ["kd", "0.7", "4"] and cells["baseline"][:3] == ["none", "", ""], table
    assert cells["KD"][4:6] == [mean_std(kd), mean_std(teacher)], table
    search_table = (tmp_path / "reports" / "kd-digits-search.md").read_text()
    assert all(f"{a:g}" in search_table for a in alphas), search_table


# ---- a two-node Ray cluster on loopback: the package as a path plugin, shipped by Ray ----------------------

@pytest.mark.slow
def test_the_example_as_a_path_plugin_runs_on_both_nodes_of_a_cluster(tmp_path):
    assert importlib.util.find_spec("harness_kd") is None  # installed nowhere this process or its nodes see
    with procs.two_node_ray() as cluster:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            launches.harness("run", GRID, "--profile", "smoke", "--address", cluster.address, "--plugins",
                             EXAMPLE / "harness_kd", "--tracking-uri", uri, "--storage-path", tmp_path / "ray",
                             "--quiet"),
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs = _finished(uri, "kd_digits", ["baseline-seed0", "baseline-seed1", "KD-seed0", "KD-seed1"])
        assert len({r.data.tags["ray_node_id"] for r in runs.values()}) == 2  # trials on both nodes
        assert {r.data.params["method.name"] for n, r in runs.items() if n.startswith("KD")} == {"kd"}
        # Ray shipped the package to the worker node (runtime_env py_modules, unpacked under its temp dir)
        shipped = list(cluster.temp_dirs[1].glob("session_*/runtime_resources/py_modules_files/*/harness_kd/distill.py"))
        assert shipped, sorted(str(p) for p in cluster.temp_dirs[1].glob("session_*/runtime_resources/*/*"))
