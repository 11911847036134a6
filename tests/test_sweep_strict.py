"""Sweep files are strict (issue 22): what a hand-written sweep file or ``--set`` gets wrong is refused
before any work, naming the key, the value and what is valid: a key given twice (at any depth, in a
flow mapping, in a parent reached by ``extends:``), an unknown key (with the nearest valid one), an
empty ``rows:``, a row label that cannot name a trial, a constraint no sample can meet. Numbers read
in every YAML spelling (``1e-9`` is a float, as in YAML 1.2), in sweep files and ``--set`` alike.
"""
from __future__ import annotations

import math

import pytest
import yaml

from harness import catalog, cli, config, search, yamlio
from harness.errors import ConfigError

SWEEP = """\
name: tiny_strict
paper: jiang
artifacts:
  - {id: tiny-strict, kind: table, number: "0", title: tiny, report: "harness_analysis.jiang:make_performance_table",
     options: {published: "4-9"}}
base:
  data: {dataset: digits, train_subset: 200, test_subset: 50, val_size: 40}
  model: {name: digits_cnn}
  train:
    epochs: 2
    batch_size: 32
rows:
  - {label: Re-impl., config: {}}
  - {label: R1_0.618, config: {sampler: {name: flat, alpha: [0.618]}}}
profiles:
  paper: {}
  quick: {}
  smoke: {config: {train: {epochs: 1}}}
"""
SEARCH = {"space": {"train.lr": {"loguniform": [0.01, 0.3]}}, "num_samples": 2, "algorithm": "random", "seed": 0,
          "objectives": {"val_acc": "max", "macs": "min"}}


def _line(text: str, start: str) -> int:
    """The 1-based number of the first line of ``text`` that starts with ``start``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def _with(text: str, after: str, *lines: str) -> str:
    """``text`` with ``lines`` inserted after the first line that starts with ``after``."""
    out = text.splitlines()
    at = _line(text, after)
    return "\n".join(out[:at] + list(lines) + out[at:]) + "\n"


def _rows(text: str, *rows: str) -> str:
    """``text`` with its rows replaced (flow mappings, one a line, or a bare ``rows: []``)."""
    head, _, tail = text.partition("rows:\n")
    tail = tail[tail.index("profiles:"):]
    return head + ("rows:\n" + "".join(f"  - {r}\n" for r in rows) if rows else "rows: []\n") + tail


def _load(tmp_path, text: str, name: str = "t.yaml") -> catalog.Sweep:
    path = tmp_path / name
    path.write_text(text)
    return catalog.load_sweep(path)


def _refused(tmp_path, text: str, name: str = "t.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text, name)
    return e.value


def test_the_tiny_sweep_loads(tmp_path):
    s = _load(tmp_path, SWEEP)
    assert [r["label"] for r in s.rows] == ["Re-impl.", "R1_0.618"] and len(s.cells("smoke")) == 2


# ---- duplicate keys ----------------------------------------------------------------------------------

def test_a_duplicate_key_names_the_key_its_mapping_and_both_lines(tmp_path):
    text = _with(SWEEP, "    batch_size:", "    epochs: 400")
    e = _refused(tmp_path, text)
    first, again = _line(text, "    epochs: 2"), _line(text, "    epochs: 400")
    assert (e.key, e.value) == ("t.yaml.base.train", "epochs")
    assert e.valid == f"a key given once (line {first} and line {again})"


def test_a_duplicate_top_level_key_and_one_inside_a_flow_mapping(tmp_path):
    e = _refused(tmp_path, SWEEP + "name: other\n")
    assert (e.key, e.value) == ("t.yaml", "name") and "line 1 and line" in e.valid
    e = _refused(tmp_path, _rows(SWEEP, "{label: a, config: {train: {lr: 0.1, lr: 0.2}}}"))
    assert (e.key, e.value) == ("t.yaml.rows[0].config.train", "lr")
    e = _refused(tmp_path, _rows(SWEEP, "{label: a, label: b}"))
    assert (e.key, e.value) == ("t.yaml.rows[0]", "label")


def test_a_duplicate_key_in_an_extended_parent_names_the_parent(tmp_path):
    (tmp_path / "parent.yaml").write_text(_with(SWEEP, "    batch_size:", "    batch_size: 64"))
    e = _refused(tmp_path, "extends: parent.yaml\nname: child\n", "child.yaml")
    assert (e.key, e.value) == ("parent.yaml.base.train", "batch_size") and "a key given once" in e.valid


def test_merge_keys_and_aliases_still_work(tmp_path):
    """A mapping's own key overriding one a merge (<<) brings in is no duplicate; an alias is one node."""
    text = _rows(SWEEP.replace("  train:\n", "  train: &protocol\n"),
                 "{label: a, config: {model: &net {name: digits_cnn, options: {width: 0.5}}}}",
                 "{label: b, config: {model: *net, train: {<<: *protocol, epochs: 3}}}")
    s = _load(tmp_path, text)
    rows = {r["label"]: r["config"] for r in s.rows}
    assert rows["b"]["model"] == {"name": "digits_cnn", "options": {"width": 0.5}}
    assert rows["b"]["train"] == {"epochs": 3, "batch_size": 32}
    assert {c.row: c.config["train"]["epochs"] for c in s.cells("paper")} == {"a": 2, "b": 3}


def test_duplicate_keys_in_a_set_value_are_refused():
    with pytest.raises(ConfigError) as e:
        config._split_set("model.options={width: 0.5, width: 0.25}")
    assert e.value.key == "model.options" and "duplicate key 'width'" in e.value.valid


# ---- numbers -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["1e-9", "1E5", "+1e3", ".5e-3", "6.02e23", "-2.5E-3", "1.0e5", "2.0e+7", "1.0e-4"])
def test_numbers_read_in_every_yaml_spelling(text):
    value = yamlio.load(text)
    assert isinstance(value, float) and value == float(text)
    assert config._split_set(f"train.lr={text}") == ("train.lr", float(text))


@pytest.mark.parametrize("text,expected", [("1e", "1e"), ("e5", "e5"), ("inf", "inf"), ("1_000", 1000), ("0x10", 16),
                                           ("1/3", "1/3"), ("5", 5), ("1e400", "1e400")])
def test_what_is_no_yaml_float_reads_as_before(text, expected):
    value = yamlio.load(text)
    assert value == expected and type(value) is type(expected)


def test_infinities_stay_floats_that_the_checks_refuse():
    assert yamlio.load(".inf") == math.inf and yamlio.load("-.inf") == -math.inf and math.isnan(yamlio.load(".nan"))
    with pytest.raises(ConfigError, match="a finite number"):
        config.RunConfig.from_dict(config.apply_overrides({}, ["train.lr=.inf"]))
    with pytest.raises(ConfigError, match="overflows a float"):  # 1e400 is kept as typed, not shown as inf
        config.RunConfig.from_dict(config.apply_overrides({}, ["train.lr=1e400"]))


def test_set_lr_1e_minus_3_is_the_float_0_001():
    cfg = config.RunConfig.from_dict(config.apply_overrides({}, ["train.lr=1e-3"]))
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)


def test_a_sweep_file_reads_exponent_numbers(tmp_path):
    s = _load(tmp_path, _with(SWEEP, "    batch_size:", "    lr: 5e-2", "    weight_decay: 1E-4"))
    (cell, *_) = s.cells("paper")
    assert (cell.config["train"]["lr"], cell.config["train"]["weight_decay"]) == (0.05, 0.0001)


# ---- unknown keys, with the nearest -------------------------------------------------------------------

@pytest.mark.parametrize("text,key,valid", [
    (_rows(SWEEP, "{lable: a}"), "t.yaml.rows[0].lable", "a row key: label or config (did you mean 'label'?)"),
    (_rows(SWEEP, "{label: a}", "{label: b, confg: {}}"), "t.yaml.rows[1].confg", "(did you mean 'config'?)"),
    (SWEEP.replace("  quick: {}", "  quick: {confg: {}}"), "t.yaml.profiles.quick.confg",
     "a profile key: one of config, axes, rows, search (did you mean 'config'?)"),
    (SWEEP + "axis: {}\n", "t.yaml.axis", "a sweep file key: one of name, paper"),
    (SWEEP.replace("title: tiny", "titel: tiny"), "t.yaml.artifacts[0].titel", "(did you mean 'title'?)"),
    (SWEEP + "row_template: {label: x, prodcut: {a: [1]}}\n", "t.yaml.row_template.prodcut",
     "(did you mean 'product'?)"),
])
def test_an_unknown_key_names_the_nearest_valid_one(tmp_path, text, key, valid):
    e = _refused(tmp_path, text)
    assert e.key == key and valid in e.valid, str(e)
    if key == "t.yaml.axis":
        assert "(did you mean 'axes'?)" in e.valid


@pytest.mark.parametrize("block,key,valid", [
    ({**SEARCH, "num_sample": 3}, "search.num_sample", "(did you mean 'num_samples'?)"),
    ({**SEARCH, "constraints": {"macs": {"maxi": 1}}}, "search.constraints.macs", "(did you mean 'max'?)"),
    ({**SEARCH, "constraints": {"mac": {"max": 1}}}, "search.constraints", "(did you mean 'macs'?)"),
    ({**SEARCH, "objectives": {"val_ac": "max"}}, "search.objectives", "(did you mean 'val_acc'?)"),
    ({**SEARCH, "space": {"train.lr": {"loguniforn": [0.01, 0.3]}}}, "search.space.train.lr",
     "(did you mean 'loguniform'?)"),
])
def test_an_unknown_search_key_names_the_nearest_valid_one(block, key, valid):
    with pytest.raises(ConfigError) as e:
        search.parse_search(block)
    assert e.value.key == key and valid in e.value.valid, str(e.value)


# ---- rows and labels ---------------------------------------------------------------------------------

def test_empty_rows_are_refused_and_no_rows_key_is_one_default_row(tmp_path):
    e = _refused(tmp_path, _rows(SWEEP))
    assert (e.key, e.value) == ("t.yaml.rows", []) and "at least one row" in e.valid
    head, _, tail = SWEEP.partition("rows:\n")
    s = _load(tmp_path, head + tail[tail.index("profiles:"):])
    assert [r["label"] for r in s.rows] == ["default"]
    e = _refused(tmp_path, SWEEP.replace("  quick: {}", "  quick: {rows: []}"))
    assert e.key == "t.yaml.profiles.quick.rows" and "a non-empty list" in e.valid


@pytest.mark.parametrize("label,why", [
    ("''", "is empty"), ("a/b", "path separator"), ("'a\\\\b'", "path separator"), ('"a\\0b"', "control character"),
    ('"a\\tb"', "control character"), ("'.'", "names a folder"), ("'..'", "names a folder"), ("-x", "starts with -"),
    ("' x'", "space"), ("x" * 101, "has 101 characters"),
])
def test_a_label_that_cannot_name_a_trial_or_a_file_is_refused(tmp_path, label, why):
    e = _refused(tmp_path, _rows(SWEEP, f"{{label: {label}}}"))
    assert e.key == "t.yaml.rows[0].label" and why in e.valid and "a label that can name a trial" in e.valid, str(e)


def test_labels_a_row_template_generates_are_checked_too(tmp_path):
    text = SWEEP + "row_template: {label: 'w{w}', product: {w: [1, a/b]}}\n"
    e = _refused(tmp_path, text)
    assert (e.key, e.value) == ("t.yaml.row_template[1].label", "wa/b") and "path separator" in e.valid


def test_the_labels_the_shipped_sweeps_use_pass(tmp_path):
    labels = ["Re-impl.", "R1_0.618", "a0.25-n8", "exp4_g2_a0.5_gc-c1dw", "c_cnn-s0", "x" * 100]
    s = _load(tmp_path, _rows(SWEEP, *[f"{{label: {label}}}" for label in labels]))
    assert [r["label"] for r in s.rows] == labels


def test_every_shipped_sweep_still_loads():
    sweeps = catalog.all_sweeps()
    assert len(sweeps) >= 24 and all(s.rows for s in sweeps.values())


# ---- constraints no sample can meet ------------------------------------------------------------------

@pytest.mark.parametrize("constraints,key,valid,shown", [
    ({"macs": {"min": 2.0e7, "max": 1.0e6}}, "search.constraints.macs", "min <= max", ["20000000.0", "1000000.0"]),
    ({"params": {"max": -1}}, "search.constraints.params.max", "a number >= 0", ["-1"]),
    ({"params": {"max": "lots"}}, "search.constraints.params.max", "a number", ["lots"]),
    ({"params": {"max": "1e6"}}, "search.constraints.params.max", "a number, not text", ["1e6"]),
])
def test_a_constraint_no_sample_can_meet_is_refused(constraints, key, valid, shown):
    with pytest.raises(ConfigError) as e:
        search.parse_search({**SEARCH, "constraints": constraints})
    assert e.value.key == key and valid in e.value.valid
    assert all(s in str(e.value) for s in shown), str(e.value)


def test_meetable_constraints_pass():
    spec = search.parse_search({**SEARCH, "constraints": {"macs": {"min": 1e6, "max": 1e6}, "params": {"max": 0}}})
    assert spec.constraints == {"macs": {"min": 1e6, "max": 1e6}, "params": {"max": 0}}


# ---- through the command line: exit 2, one line, before Ray -----------------------------------------

@pytest.fixture
def env(no_ray):
    return no_ray


def _search_sweep() -> str:
    head = SWEEP.partition("rows:\n")[0]
    block = {**SEARCH, "constraints": {"macs": {"min": 5.0e+7, "max": 1.0e+6}}}
    return head + yaml.safe_dump({"search": block, "profiles": {"paper": {}, "quick": {}, "smoke": {}}})


CLI_CASES = {
    "duplicate": (_with(SWEEP, "    batch_size:", "    epochs: 400"), "t.yaml.base.train", "epochs"),
    "unknown-row-key": (_rows(SWEEP, "{lable: a}"), "t.yaml.rows[0].lable", "did you mean 'label'?"),
    "empty-rows": (_rows(SWEEP), "t.yaml.rows", "at least one row"),
    "slash-label": (_rows(SWEEP, "{label: a/b}"), "t.yaml.rows[0].label", "a/b"),
    "impossible-constraint": (_search_sweep(), "search.constraints.macs", "min <= max"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_the_cli_exits_2_with_one_line_before_ray(env, capsys, case):
    text, key, shown = CLI_CASES[case]
    (env / "t.yaml").write_text(text)
    rc = cli.main(["run", "t.yaml", "--profile", "smoke", "--tracking-uri", "sqlite:///store.db", "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("harness: error: "), err
    assert key in lines[0] and shown in lines[0], lines[0]
    assert not (env / "store.db").exists()


def test_a_tiny_width_in_exponent_form_reaches_the_models_range_check(env, capsys):
    (env / "t.yaml").write_text(SWEEP)
    rc = cli.main(["run", "t.yaml", "--profile", "smoke", "--tracking-uri", "sqlite:///store.db", "--quiet",
                   "--set", "model.name=resnet20", "--set", "model.options.width=1e-9"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "model.options.width=1e-09" in lines[0], err
    assert "a finite number" not in lines[0]  # read as a number, refused by the model for what it builds


def test_a_negative_width_in_exponent_form_gets_the_models_own_message(env, capsys):
    (env / "t.yaml").write_text(SWEEP)
    rc = cli.main(["run", "t.yaml", "--profile", "smoke", "--tracking-uri", "sqlite:///store.db", "--quiet",
                   "--set", "model.name=resnet20", "--set", "model.options.width=-1e-9"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "model.options.width=-1e-09" in lines[0] and "> 0" in lines[0], lines
