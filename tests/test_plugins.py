"""harness.plugins: a user's model, method or report in their own file, on the same tables without a fork.

A plugin named three ways (a sweep's ``plugins:``, ``--plugins``, an installed distribution's
``harness.plugins`` entry point) registers into the same registries; the driver checks its entries as
built-in ones and every trial imports it before it builds. Bad plugins exit 2 with one line before Ray
starts. ``paper:`` is any name, its published values may sit in a file beside the sweep, and
``harness list --paper`` filters. Each test writes its plugin under a module and model name of its own:
the registries and ``sys.modules`` are the process's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from harness import cli
from tests import launches

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''\
"""A user's own model and report builder, registered with harness's decorators."""
import pandas as pd
from torch import nn

from harness.registry import MODELS
from harness_analysis.report import Table


@MODELS.register("{model}")
def tiny_mlp(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, hidden: int = 16) -> nn.Module:
    """A two-layer MLP (a plugin's model)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def make_table(runs, published=None):
    from harness_analysis.published import table

    paper = table("{paper}", published)["rows"][0]["top1"] if published else None
    frame = pd.DataFrame({{"runs": [len(runs)], "mean_val_acc": [float(runs["val_acc"].mean())],
                          "published_top1": [paper]}})
    return Table(frame)
'''


def _sweep(name: str, model: str, paper: str = "my-paper", **extra) -> dict:
    sweep = launches.digits_sweep(name, epochs=1, milestone=1)
    sweep["paper"] = paper
    sweep["base"]["model"] = {"name": model, "options": {"hidden": 8}}
    sweep["base"]["data"].update(train_subset=200, test_subset=50)
    sweep["artifacts"] = [{"id": name.replace("_", "-"), "kind": "table", "number": "1", "title": name,
                           "report": f"{extra.pop('report_module', 'plugin_' + name)}:make_table",
                           "options": {"published": "t1"}}]
    sweep.update(extra)
    return sweep


def _write(folder: Path, name: str, model: str, paper: str = "my-paper", plugin_file: bool = True, **extra) -> Path:
    """A user's folder: ``plugin_<name>.py`` (unless ``plugin_file`` is False), ``values.yaml`` and the sweep."""
    folder.mkdir(parents=True, exist_ok=True)
    if plugin_file:
        (folder / f"plugin_{name}.py").write_text(PLUGIN.format(model=model, paper=paper))
    (folder / "values.yaml").write_text(yaml.safe_dump({"t1": {"table": "T1", "rows": [{"row": "a", "top1": 91.5}]}}))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(_sweep(name, model, paper, published="values.yaml", **extra)))
    return path


def _main(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- end to end: a plugin model trained as a tiny digits grid -------------------------------------------

@pytest.mark.slow
def test_a_plugin_beside_the_sweep_trains_its_model_and_renders_its_report(ray_session, store, tmp_path, capsys):
    sweep = _write(tmp_path / "mine", "grid_file", "plugin_mlp_file", plugins=["plugin_grid_file.py"])
    rc, out, err = _main(capsys, "run", sweep, "--profile", "smoke", "--tracking-uri", store, "--quiet")
    assert rc == 0, out + err
    runs = launches.runs(store, "grid_file")
    assert sorted(runs) == ["Re-impl.-seed0", "Re-impl.-seed1"]
    assert {r.info.status for r in runs.values()} == {"FINISHED"}, {n: r.data.tags for n, r in runs.items()}
    assert {r.data.params["model.name"] for r in runs.values()} == {"plugin_mlp_file"}
    assert {r.data.tags["paper"] for r in runs.values()} == {"my-paper"}
    # the plugin's report builder, with the published value from the file beside the sweep
    rc, out, err = _main(capsys, "report", sweep, "--tracking-uri", store, "--out", tmp_path / "reports")
    assert rc == 0, out + err
    text = (tmp_path / "reports" / "grid-file.md").read_text()
    assert "91.5" in text and "My-paper table 1" in text


@pytest.mark.slow
def test_a_plugin_named_with_the_plugins_flag_trains_its_model(ray_session, store, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mine"
    sweep = _write(folder, "grid_flag", "plugin_mlp_flag")
    monkeypatch.chdir(folder)  # --plugins paths are relative to the working folder
    rc, out, err = _main(capsys, "run", sweep, "--profile", "smoke", "--tracking-uri", store, "--quiet",
                         "--plugins", "plugin_grid_flag.py")
    assert rc == 0, out + err
    runs = launches.runs(store, "grid_flag")
    assert len(runs) == 2 and {r.info.status for r in runs.values()} == {"FINISHED"}


# ---- bad plugins: exit 2, one line, before Ray starts and before the store is written ----------------------

def _refused(capsys, no_ray, argv, *words):
    rc, out, err = _main(capsys, *argv, "--tracking-uri", f"sqlite:///{no_ray / 'mlflow.db'}")
    assert rc == 2, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("harness: error: "), err
    for word in words:
        assert word in err, err
    assert not (no_ray / "mlflow.db").exists()


def test_a_missing_plugin_module_is_refused(no_ray, capsys):
    sweep = _write(no_ray / "mine", "missing_mod", "plugin_mlp_missing_mod", plugin_file=False)
    _refused(capsys, no_ray, ["run", sweep, "--profile", "smoke", "--plugins", "no_such_plugin_module"],
             "--plugins='no_such_plugin_module'", "ModuleNotFoundError")


def test_a_missing_plugin_file_is_refused(no_ray, capsys):
    sweep = _write(no_ray / "mine", "missing_file", "plugin_mlp_missing_file", plugin_file=False,
                   plugins=["nowhere/plugin.py"])
    _refused(capsys, no_ray, ["run", sweep, "--profile", "smoke"], "missing_file.yaml.plugins", "plugin.py")


def test_a_plugin_that_raises_on_import_is_refused(no_ray, capsys):
    folder = no_ray / "mine"
    sweep = _write(folder, "raises", "plugin_mlp_raises", plugins=["plugin_raises_boom.py"])
    (folder / "plugin_raises_boom.py").write_text("raise RuntimeError('the plugin broke\\non two lines')\n")
    _refused(capsys, no_ray, ["run", sweep, "--profile", "smoke"], "plugin_raises_boom.py",
             "RuntimeError: the plugin broke")
    assert "plugin_raises_boom" not in sys.modules


def test_a_plugin_models_ill_typed_option_is_refused(no_ray, capsys):
    folder = no_ray / "mine"
    sweep = _write(folder, "ill_typed", "plugin_mlp_ill_typed", plugins=["plugin_ill_typed.py"],
                   axes={"train.seed": [0], "model.options.hidden": ["wide"]})
    _refused(capsys, no_ray, ["run", sweep, "--profile", "smoke"], "model.options.hidden='wide'", "an int")


def test_a_plugin_report_that_does_not_exist_is_refused(no_ray, capsys):
    sweep = _write(no_ray / "mine", "no_report", "plugin_mlp_no_report", plugins=["plugin_no_report.py"],
                   report_module="plugin_no_report_elsewhere")
    _refused(capsys, no_ray, ["run", sweep, "--profile", "smoke"], "plugin_no_report_elsewhere:make_table")


# ---- where each entry comes from; paper: is any name ----------------------------------------------------

def test_models_and_list_say_where_each_entry_comes_from(no_ray, capsys, monkeypatch):
    folder = no_ray / "mine"
    _write(folder, "listed", "plugin_mlp_listed", paper="someone-2027", plugins=["plugin_listed.py"])
    monkeypatch.setenv("HARNESS_SWEEPS", str(folder))
    rc, out, err = _main(capsys, "list", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["listed"]
    assert rows[0]["paper"] == "someone-2027"
    assert rows[0]["source"] == f"{folder / 'listed.yaml'}; plugins: {folder / 'plugin_listed.py'}"
    rc, out, _ = _main(capsys, "models", "--json")
    origins = {m["name"]: m["origin"] for m in json.loads(out)}
    assert origins["plugin_mlp_listed"] == str(folder / "plugin_listed.py")
    assert origins["resnet20"] == "built-in"
    rc, out, _ = _main(capsys, "models")
    assert f"from: {folder / 'plugin_listed.py'}" in out and "from: built-in" in out


def test_models_with_the_plugins_flag(no_ray, capsys):
    (no_ray / "plugin_models_flag.py").write_text(PLUGIN.format(model="plugin_mlp_models_flag", paper="x"))
    rc, out, err = _main(capsys, "models", "--json", "--plugins", "./plugin_models_flag.py")
    assert rc == 0, err
    origins = {m["name"]: m["origin"] for m in json.loads(out)}
    assert origins["plugin_mlp_models_flag"] == str(no_ray / "plugin_models_flag.py")


def test_list_filters_by_paper_and_builtin_sweeps_say_so(no_ray, capsys):
    rc, out, err = _main(capsys, "list", "--json", "--paper", "jin")
    rows = json.loads(out)
    assert rc == 0 and rows and {r["paper"] for r in rows} == {"jin"}
    assert {r["source"] for r in rows} == {"built-in"}
    rc, _, err = _main(capsys, "list", "--paper", "jni")
    assert rc == 2 and "--paper='jni'" in err and "did you mean 'jin'" in err


def test_paper_is_free_text_and_list_paper_finds_it(no_ray, capsys, monkeypatch):
    folder = no_ray / "mine"
    _write(folder, "free_paper", "plugin_mlp_free_paper", paper="Smith et al. 2027", plugins=["plugin_free_paper.py"])
    monkeypatch.setenv("HARNESS_SWEEPS", str(folder))
    rc, out, err = _main(capsys, "list", "--paper", "Smith et al. 2027")
    assert rc == 0, err
    assert out.startswith("free-paper") and "[from " in out


def test_a_published_file_that_does_not_exist_is_refused(no_ray, capsys):
    folder = no_ray / "mine"
    sweep = _write(folder, "no_values", "plugin_mlp_no_values", plugins=["plugin_no_values.py"])
    text = yaml.safe_load(sweep.read_text())
    sweep.write_text(yaml.safe_dump({**text, "published": "absent.yaml"}))
    _refused(capsys, no_ray, ["run", sweep, "--profile", "smoke"], "no_values.yaml.published", "absent.yaml")


# ---- the entry-point group, through importlib.metadata's own discovery ----------------------------------

def _distribution(folder: Path, module: str, source: str) -> dict:
    """A tiny installed distribution in ``folder`` declaring ``module`` in the ``harness.plugins`` group;
    the environment of a `harness` process that has it on its path."""
    info = folder / "user_plugin_dist-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-plugin-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[harness.plugins]\nmine = {module}\n")
    (folder / f"{module}.py").write_text(source)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]), "RAY_AUTH_MODE": "disabled"}


def test_an_entry_point_plugin_is_imported_on_the_first_registry_lookup(tmp_path):
    env = _distribution(tmp_path / "site", "ep_user_models", PLUGIN.format(model="ep_mlp", paper="x"))
    done = subprocess.run(launches.harness("models", "--json"), env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    origins = {m["name"]: m["origin"] for m in json.loads(done.stdout)}
    assert origins["ep_mlp"] == "user-plugin-dist (entry point mine)"
    # the driver's checks treat it as a built-in model: a typed option is checked on it
    sweep = tmp_path / "ep.yaml"
    sweep.write_text(yaml.safe_dump(_sweep("ep_sweep", "ep_mlp", report_module="ep_user_models",
                                           axes={"train.seed": [0], "model.options.hidden": [2.5]})))
    done = subprocess.run(launches.harness("run", sweep, "--profile", "smoke", "--tracking-uri",
                                           f"sqlite:///{tmp_path / 'mlflow.db'}"),
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "model.options.hidden=2.5" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()


def test_an_entry_point_plugin_that_raises_is_one_line(tmp_path):
    env = _distribution(tmp_path / "site", "ep_broken", textwrap.dedent("""\
        import a_module_nobody_has  # noqa: F401
    """))
    done = subprocess.run(launches.harness("models"), env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == ("harness: error: entry point harness.plugins mine='ep_broken' is not valid: expected "
                                   "a plugin that imports (ModuleNotFoundError: No module named 'a_module_nobody_has')")
