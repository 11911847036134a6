"""harness.shipped: a checkout reads its own sweeps/ and imports its analysis/ as harness_analysis, once; the old
package name is refused on import and, in a sweep file's report, resolves to the new one with one deprecation
line. The installed wheel's side: tests/test_wheel.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import catalog, shipped
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _artifact(report: str, sweep_file: str, **options) -> catalog.Artifact:
    return catalog.Artifact(id="old-table", paper="jiang", kind="table", number="4-9", title="t", sweep="old",
                            report=report, options=options, sweep_file=sweep_file)


def test_a_checkout_reads_its_own_sweeps(monkeypatch):
    monkeypatch.delenv("HARNESS_SWEEPS", raising=False)
    assert shipped.checkout() == ROOT
    assert catalog.sweeps_dir() == ROOT / "sweeps"
    monkeypatch.setenv("HARNESS_SWEEPS", "/elsewhere")
    assert catalog.sweeps_dir() == Path("/elsewhere")


def test_an_installed_copy_reads_the_sweeps_it_ships(monkeypatch, tmp_path):
    # site-packages: harness/ beside other distributions' packages, one of which may well be called analysis
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "__init__.py").write_text("")
    monkeypatch.setattr(shipped, "ROOT", tmp_path)
    monkeypatch.delenv("HARNESS_SWEEPS", raising=False)
    assert shipped.checkout() is None
    assert shipped.sweeps_dir() == ROOT / "harness" / "sweeps"  # importlib.resources: the package's folder


def test_the_report_package_is_imported_once_under_its_new_name():
    import harness_analysis.jiang

    assert Path(harness_analysis.jiang.__file__) == ROOT / "analysis" / "jiang.py"
    assert not [m for m in sys.modules if m == "analysis" or m.startswith("analysis.")]


def test_importing_the_old_name_in_a_checkout_names_the_new_one():
    code = ("import harness_analysis.jiang\n"
            "try:\n    import analysis.jiang\nexcept ImportError as e:\n    print(e)\n"
            "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'analysis'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "the report package is harness_analysis now, not analysis: import harness_analysis "
        "(from harness_analysis import jiang, ...)", "[]"]


def test_a_checkout_on_pythonpath_alone_imports_its_analysis_folder(tmp_path):
    # -S: no site-packages, so neither the editable install's finder nor any installed copy: only the checkout
    code = ("import json, harness, harness_analysis\n"
            "print(json.dumps([harness_analysis.__file__, *harness_analysis.__path__]))")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [str(ROOT / "analysis" / "__init__.py"), str(ROOT / "analysis")]


def test_an_old_report_name_resolves_with_one_deprecation_line(monkeypatch, capsys):
    from harness_analysis import jiang

    monkeypatch.setattr(shipped, "_said", set())
    old = _artifact("analysis.jiang:make_performance_table", "/home/me/my_sweep.yaml", published="4-9")
    assert catalog.report_function(old) is jiang.make_performance_table
    assert catalog.report_function(old) is jiang.make_performance_table  # validated, then rendered: said once
    assert capsys.readouterr().err.splitlines() == [
        "harness: deprecated: /home/me/my_sweep.yaml: report analysis.jiang:make_performance_table is "
        "harness_analysis.jiang:make_performance_table now (the package analysis was renamed harness_analysis); "
        "rename its analysis.* reports"]
    new = _artifact("harness_analysis.jiang:make_performance_table", "/home/me/new.yaml", published="4-9")
    assert catalog.report_function(new) is jiang.make_performance_table
    assert capsys.readouterr().err == ""


def test_an_old_name_with_no_such_builder_fails_as_any_wrong_report(monkeypatch):
    monkeypatch.setattr(shipped, "_said", set())
    with pytest.raises(ConfigError, match="a function harness_analysis.jiang defines"):
        catalog.report_function(_artifact("analysis.jiang:make_nothing", "old.yaml"))


def test_a_users_own_package_called_analysis_is_imported_as_written(monkeypatch, tmp_path, capsys):
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "__init__.py").write_text("")
    (tmp_path / "analysis" / "mine.py").write_text("def make_mine(runs):\n    return 'mine'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        fn = catalog.report_function(_artifact("analysis.mine:make_mine", "mine.yaml"))
        assert fn(None) == "mine" and Path(sys.modules["analysis.mine"].__file__) == tmp_path / "analysis" / "mine.py"
    finally:
        for name in ("analysis.mine", "analysis"):
            sys.modules.pop(name, None)
    assert capsys.readouterr().err == ""
