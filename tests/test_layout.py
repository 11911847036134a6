"""The package's shape, as issue 12 set it: no import cycle inside harness/ (deferred imports included),
config.py a leaf, the trial driver reading no attribute by name, reports that time nothing, and no
module in harness/ over 400 lines. Read from the source with ``ast``: nothing is imported or run."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The harness modules ``name`` imports anywhere in its file (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import x` imports the submodule x when there is one
            targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # harness.models.resnet.ResNet -> harness.models.resnet
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {n: _imports(n, p, known) for n, p in mods.items()}
    # a package's __init__ is imported with any of its submodules: importing harness.models.vgg runs
    # harness/models/__init__.py first. Only the edges written in the files count as cycles here.
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if m.startswith(n + "."):  # a package importing its own submodules is how it registers them
                continue
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_import_graph_finds_a_cycle_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _cycle({"p": {"p.x"}, "p.x": set()}) is None


def test_harness_has_no_import_cycle():
    assert _cycle(_graph()) is None


def test_config_imports_only_the_registry_and_errors():
    graph = _graph()
    # and the YAML reader of --set values and sweep files, itself importing nothing of the harness
    assert graph["harness.config"] <= {"harness.registry", "harness.errors", "harness.yamlio", "harness"}
    assert graph["harness.yamlio"] <= {"harness"}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _calls(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            names.append(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


def test_the_trial_driver_reads_no_attribute_by_name():
    for name in ("sweep.py", "trial.py"):
        path = PACKAGE / name
        if path.exists():
            assert "getattr" not in _calls(path), name


@pytest.mark.parametrize("path", sorted((ROOT / "analysis").glob("*.py")), ids=lambda p: p.name)
def test_no_report_function_calls_a_timer(path):
    timers = {"perf_counter", "perf_counter_ns", "monotonic", "process_time", "set_num_threads", "measure_latency",
              "throughput"}
    assert not timers & set(_calls(path))
    tree = ast.parse(path.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "time" for a in n.names}
    assert not imported & timers


def test_the_wheels_package_list_names_every_package_folder():
    """pyproject.toml lists the packages by hand (package-dir installs analysis/ as harness_analysis, which
    packages.find cannot see): a new folder of modules missing from the list would be missing from the wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"harness": PACKAGE, "harness_analysis": ROOT / "analysis"}
    expected = {**folders, "harness.sweeps": ROOT / "sweeps"}  # every folder of modules or data files is a package
    for name, top in folders.items():
        expected.update({".".join((name, *d.relative_to(top).parts)): d for d in top.rglob("*")
                         if d.is_dir() and any(f.suffix in (".py", ".yaml", ".ipynb") for f in d.iterdir())})
    assert sorted(setuptools["packages"]) == sorted(expected)
    mapped = {name: ROOT / d for name, d in setuptools["package-dir"].items()}
    assert all(expected[name] == path for name, path in mapped.items())


# Libraries whose private attributes harness/ reads only in harness/adapters.py (issue 23, part 4), and
# modules of theirs that are internals even without a leading underscore.
LIBRARIES = ("ray", "mlflow", "torch", "torchvision", "optuna")
LIBRARY_INTERNALS = ("mlflow.system_metrics",)
ADAPTERS = PACKAGE / "adapters.py"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _library(module: str) -> bool:
    return module.split(".")[0] in LIBRARIES


def _private_library_uses(source: str) -> list[str]:
    """Every private attribute of a library object and every library internal a module's source reads:
    ``obj._x`` on anything but ``self``, ``cls`` or a harness module it imported by name, and imports of
    ``_x`` names, ``_x`` modules or LIBRARY_INTERNALS from a library."""
    tree = ast.parse(source)
    own = set()  # names bound to harness modules or harness names: their privates are the harness's own
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "harness"):
            own.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            own.update(a.asname or a.name for a in node.names if a.name.split(".")[0] == "harness")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls", *own}):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module and _library(node.module):
            names = [a.name for a in node.names]
            if (any(_private(p) for p in node.module.split(".")) or any(map(_private, names))
                    or node.module.startswith(LIBRARY_INTERNALS)):
                found.append(f"line {node.lineno}: from {node.module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                internal = any(_private(p) for p in a.name.split(".")) or a.name.startswith(LIBRARY_INTERNALS)
                if _library(a.name) and internal:
                    found.append(f"line {node.lineno}: import {a.name}")
    return found


def test_the_private_attribute_scan_finds_what_it_looks_for():
    assert _private_library_uses("x = grid._experiment_analysis.trials") == ["line 1: grid._experiment_analysis"]
    assert _private_library_uses("from torch.utils.data import _utils")
    assert _private_library_uses("from torch._dynamo import config")
    assert _private_library_uses("from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor")
    assert _private_library_uses("import torch._dynamo")
    clean = ("from . import tracking\nfrom .runs import x as y\nclass A:\n    def f(self):\n        return self._x\n"
             "t = tracking._param_text(1)\nz = y._w\nimport torch\nq = torch.nn.Linear.__name__\n")
    assert _private_library_uses(clean) == []


@pytest.mark.parametrize("path", [p for p in sorted(PACKAGE.rglob("*.py")) if p != ADAPTERS],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_attribute_of_a_library_outside_the_adapter_module(path):
    """Ray's, Tune's, MLflow's, torch's and torchvision's private attributes are read in harness/adapters.py
    alone, each with a test of its own (tests/test_adapters.py); everywhere else, their public APIs."""
    assert _private_library_uses(path.read_text()) == [], f"{path.name}: use or add a harness.adapters function"


LAUNCH_MODULES = ("harness.sweep", "harness.search_run", "harness.launcher")


@pytest.mark.parametrize("name", ["sweep.py", "search_run.py"])
def test_the_launch_kinds_share_public_names_only(name):
    """The grid and the search drive one launch (harness.launcher) through its public names; neither
    reads the other's, nor the launcher's, private names."""
    path = PACKAGE / name
    me = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            stem = ("harness." + (node.module or "")) if node.level else (node.module or "")
            if stem.rstrip(".") in LAUNCH_MODULES and stem.rstrip(".") != me:
                assert not [a.name for a in node.names if _private(a.name)], (name, ast.unparse(node))
            elif node.level and not node.module:  # from . import sweep: no private attribute of it read
                assert not {a.asname or a.name for a in node.names} & {"sweep", "search_run", "launcher"} - {me}
    other = {"sweep.py": "search_run", "search_run.py": "sweep"}[name]
    assert f"harness.{other}" not in _graph()[me], f"{name} imports harness.{other}: share through harness.launcher"
