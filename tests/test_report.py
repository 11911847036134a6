"""harness_analysis.report: a table is written as md, csv and tex with its cells exactly as the report made them."""
import pandas as pd

from harness_analysis.report import Table, _built, write
from harness.catalog import Artifact


def test_table_cells_keep_trailing_zeros_and_signs(tmp_path):
    artifact = Artifact(id="t-table-1", paper="jiang", kind="table", number="1", title="T", sweep="t", report="x:y")
    frame = pd.DataFrame({"top-1 %": ["92.10", "-"], "delta": ["+0.50", "-1.20"], "macs": [40551040, 270000]})
    paths = write(artifact, _built(artifact, Table(frame, ["a note"]), ["profile note"]), tmp_path)
    assert [p.name for p in paths] == ["t-table-1.md", "t-table-1.csv", "t-table-1.tex"]
    md = paths[0].read_text()
    assert "92.10" in md and "+0.50" in md and "-1.20" in md and "40551040" in md
    assert "- profile note\n- a note" in md
    assert "+0.50" in paths[1].read_text() and "92.10" in paths[2].read_text()


# ---- reports are pure, published values are data ------------------------------------------------

import ast  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from harness_analysis import published  # noqa: E402
from harness.errors import ConfigError  # noqa: E402

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
SEEDS = ANALYSIS.parents[1] / "shared" / "seeds"
TIMERS = {("time", "perf_counter"), ("time", "perf_counter_ns"), ("time", "time"), ("time", "monotonic"),
          ("time", "process_time"), ("torch", "set_num_threads"), ("latency", "measure_latency")}


def _timer_uses(path: Path) -> list[str]:
    """time.perf_counter, time.time, torch.set_num_threads, measure_latency ...: used as an attribute or imported."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (node.value.id, node.attr) in TIMERS:
            found.append(f"{node.value.id}.{node.attr}")
        if isinstance(node, ast.ImportFrom):
            found += [a.name for a in node.names if any(a.name == name for _, name in TIMERS)]
    return found


@pytest.mark.parametrize("path", sorted(ANALYSIS.rglob("*.py")), ids=lambda p: str(p.relative_to(ANALYSIS)))
def test_no_report_function_times_anything(path):
    assert _timer_uses(path) == [], f"{path.name} times something: measure it in a trial (harness/methods/latency.py)"


def test_the_timer_check_finds_timers(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import time\nimport torch\nfrom harness.latency import measure_latency\n"
                     "def f():\n    t = time.perf_counter()\n    torch.set_num_threads(1)\n    return time.time() - t\n")
    assert sorted(_timer_uses(probe)) == ["measure_latency", "time.perf_counter", "time.time", "torch.set_num_threads"]


def test_published_tables_are_loaded_from_their_files():
    block = published.table("jiang", "4-1")
    assert block["table"].startswith("Table 4-1:") and (block["network"], block["batch_size"]) == ("crnet_cb", 256)
    assert block["rows"][1] == {"exp": 4, "g": 2, "alpha": 0.5, "strategy": "gc-c1dw", "params_m": 0.16,
                                "flops_m": 27.36, "top1": 91.46}
    assert published.table("jin", "2.1")["rows"][0] == {"model": "alexnet", "type": "dense", "params": "61.1M",
                                                         "flops": "715M"}
    with pytest.raises(ConfigError, match="one of 4-9, 4-11, 4-13, 4-1"):
        published.table("jiang", "4-99")
    with pytest.raises(ConfigError, match="calli, calli_studies, jiang, jin, poellot, zheng"):
        published.load("nobody")


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed texts (../shared/seeds) are not beside this checkout")
@pytest.mark.parametrize("paper", ["calli", "jiang", "jin", "poellot", "zheng"])
def test_every_published_number_is_printed_in_its_seed_text(paper):
    """Each value (but the settings that key a row: exp, g, α, N, sparsity, batch, shapes) is a number the
    paper's text prints, so a transcription slip shows up here."""
    data = published.load(paper)
    text = (SEEDS / data["seed"]).read_text()
    printed = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)}
    keys = {"exp", "g", "alpha", "n", "sparsity", "batch", "inner", "out", "stride", "blocks", "se", "dw"}
    checked = 0
    for name, block in data.items():
        for row in block["rows"] if isinstance(block, dict) and "rows" in block else []:
            for key, value in row.items():
                if isinstance(value, str) and re.fullmatch(r"[0-9.]+[KMB]", value):
                    assert value in text, (name, row, key)
                elif isinstance(value, (int, float)) and not isinstance(value, bool) and key not in keys:
                    assert abs(value) in printed, (name, row, key)
                else:
                    continue
                checked += 1
    assert checked == {"calli": 10, "jiang": 358, "jin": 66, "poellot": 54, "zheng": 344}[paper]  # every value


# ---- protocol readings and seed counts in every report (issue 27) ---------------------------------

from harness import catalog  # noqa: E402
from harness_analysis import protocol, report  # noqa: E402
from harness_analysis.report import Table as _Table  # noqa: E402


def _seeded(rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{"row": row, "seed": seed, "profile": "quick", "dataset": "digits", "run_id": f"{row}{seed}"}
                         for row, seeds in rows.items() for seed in seeds])


def test_seed_note_where_the_paper_printed_one_run():
    three = _seeded({"dense": [0, 1, 2], "sparse": [0, 1, 2]})
    assert protocol.seed_note(three, "jin_table_3_1") == "Seeds: mean of 3 seeds; the paper: one run."
    assert protocol.seed_note(_seeded({"dense": [0, 1, 2], "sparse": [0]}), "jin_table_3_1") == \
        "Seeds: mean of 1-3 seeds; the paper: one run."
    assert protocol.seed_note(three, "calli_table_3_1") == ""  # the thesis's own 10 runs
    assert protocol.seed_note(_seeded({"dense": [0], "sparse": [0]}), "jin_table_3_1") == ""
    assert protocol.seed_note(pd.DataFrame(), "jin_table_3_1") == ""


def test_every_protocol_note_names_a_sweep():
    sweeps = catalog.all_sweeps()
    assert set(protocol.NOTES) <= set(sweeps) and set(protocol.PAPER_RUNS) <= set(sweeps)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed texts (../shared/seeds) are not beside this checkout")
def test_every_paper_run_count_is_stated_in_the_thesis():
    calli = " ".join((SEEDS / "002_7fd01c0de6b14536.txt").read_text().split())
    for words in ("results of 10 runs", "We ran our experiments 10 times", "in 10 training sessions"):
        assert words in calli  # PAPER_RUNS' three entries, in the thesis's words


def test_a_report_prints_the_sweeps_readings_and_its_seed_count(tmp_path, monkeypatch):
    runs = _seeded({"Re-impl.": [0, 1, 2], "R1_0.8": [0, 1, 2]})
    monkeypatch.setattr(report.recorded, "load_runs", lambda *a, **k: runs)
    monkeypatch.setattr(report.catalog, "report_function", lambda artifact: lambda frame, **options: _Table(
        pd.DataFrame({"row": sorted(set(frame["row"]))})))
    artifact = catalog.all_artifacts()["jiang-table-4-9"]
    md = next(p for p in report.render(artifact, tmp_path) if p.suffix == ".md").read_text()
    assert "- Seeds: mean of 3 seeds; the paper: one run." in md
    assert "- Augmentation: the dissertation names none; ours is the harness's CIFAR default" in md
