"""Every notebook in analysis/notebooks/ runs top to bottom against the smoke data (issue 7, point 7); one
notebook per paper (issue 15, item 15), each checked in ``CHECKS`` against the paper's printed values.

A notebook names the sweeps it reads in its metadata (``"harness": {"sweeps": [...]}``); each runs
once at its smoke profile into a store the kernel finds through ``MLFLOW_TRACKING_URI``, with
``HARNESS_PROFILE=smoke``. The notebook is executed with nbclient on this interpreter's ``python3``
kernel (the kernelspec ipykernel installs into the environment), and must rebuild a table (its cell
tagged ``table`` shows an HTML table) and a figure (its cell tagged ``figure`` shows a PNG). Saved
notebooks carry no outputs. Checks particular to a notebook are in ``CHECKS``.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .smoke_store import smoke_store

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "analysis" / "notebooks").glob("*.ipynb"))


def _tagged_outputs(nb, tag: str) -> list[dict]:
    cells = [c for c in nb.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]
    assert cells, f"no code cell tagged {tag!r}"
    return [o for c in cells for o in c.outputs]


def _check_jiang(nb) -> None:
    """Table 4-10: the paper's six rows, its -21.04 % time for α = 0.8 beside ours; a figure of two panels."""
    html = next(o["data"]["text/html"] for o in _tagged_outputs(nb, "table") if "text/html" in o.get("data", {}))
    body = html.split("<tbody>", 1)[1]
    labels = re.findall(r"<tr>\s*<th>([^<]+)</th>", body)
    assert labels == ["Re-impl.", "R1_0.8", "R1_0.618", "R2", "R2_1", "R3"]
    r1 = body.split("<th>R1_0.8</th>", 1)[1].split("</tr>", 1)[0]
    assert "<td>-21.04</td>" in r1 and "<td>-0.36</td>" in r1  # the paper's Time↑ and Top1↑ for α = 0.8
    cells = re.findall(r"<td>([^<]*)</td>", r1)
    assert len(cells) == 8 and all(c not in ("", "NaN", "nan") for c in cells), cells  # ours measured too
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "6 finished runs, profile smoke" in printed and "matches harness_analysis.jiang.summary" in printed
    figure = [o for o in _tagged_outputs(nb, "figure") if "image/png" in o.get("data", {})]
    assert "with 2 Axes" in figure[0]["data"]["text/plain"]


def _html_table(nb) -> tuple[list[str], dict]:
    """The tagged table's column names and {row label: [cell texts]}; a two-level index gives (outer, inner) labels."""
    html = next(o["data"]["text/html"] for o in _tagged_outputs(nb, "table") if "text/html" in o.get("data", {}))
    head, body = html.split("<tbody>", 1)
    columns = re.findall(r"<th>([^<]+)</th>", head.split("</tr>", 1)[0])
    rows, outer = {}, None
    for tr in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        labels = re.findall(r"<th[^>]*>([^<]*)</th>", tr)
        if len(labels) == 2:  # the first row of an outer group carries the group's label (rowspan)
            outer = labels[0]
        key = (outer, labels[-1]) if len(labels) == 2 or outer is not None else labels[0]
        rows[key] = dict(zip(columns, re.findall(r"<td>([^<]*)</td>", tr)))
    return columns, rows


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _smoke_cells(sweep: str) -> int:
    from harness import catalog

    return len(catalog.all_sweeps()[sweep].cells("smoke"))


def _figure_axes(nb) -> str:
    figure = [o for o in _tagged_outputs(nb, "figure") if "image/png" in o.get("data", {})]
    return figure[0]["data"]["text/plain"]


def _filled(*cells: str) -> bool:
    return all(c not in ("", "NaN", "nan", "<NA>", "&lt;NA&gt;") for c in cells)


def _check_zheng(nb) -> None:
    """Table 1: the paper's seven sparsities and Overall, four variants each; SWR-CNN + DBS at 30 % is the paper's
    11 s and 1.55 beside ours (pruned to exactly 0.3); Figure 2a beside Table 1's speed: two panels."""
    _, rows = _html_table(nb)
    assert list(dict.fromkeys(s for s, _ in rows)) == ["20%", "30%", "40%", "50%", "60%", "70%", "80%", "Overall"]
    assert [m for s, m in rows if s == "20%"] == ["C-CNN", "SC-CNN", "SWR-CNN", "SWR-CNN + DBS"]
    dbs = rows[("30%", "SWR-CNN + DBS")]
    assert dbs["Time s (paper)"] == "11.00" and dbs["Speed (paper)"] == "1.55"
    overall = rows[("Overall", "C-CNN")]
    assert overall["Time s (paper)"] == "11.42" and overall["Speed (paper)"] == "1.49"
    for model in ("C-CNN", "SWR-CNN + DBS"):  # rows of the smoke profile: c_cnn-s30, swr_cnn_dbs-s30
        ours = rows[("30%", model)]
        assert _filled(ours["Time s (ours)"], ours["Speed (ours)"], ours["test acc % (ours)"]), ours
        assert ours["sparsity reached (ours)"] == "0.3" and ours["seeds"] == "1"
        assert float(ours["Time s (ours)"]) > 0
    printed = _printed(nb)
    assert f"{_smoke_cells('zheng_table_1')} finished runs, profile smoke" in printed
    assert "matches harness_analysis.zheng.make_sparsity_table" in printed
    assert "with 2 Axes" in _figure_axes(nb)


def _check_poellot(nb) -> None:
    """Slide 12: its eight rows in order (then any setting of ours beyond them, with no published value), VGG-16
    CIFAR-10's +0.41 for ComboNet (α = 0.5, N = 2) beside ours; our stacking cell is recomputed from the store
    (test_acc_at_best_val minus the full-size row's)."""
    from harness import catalog
    from harness.runs import load_runs

    columns, rows = _html_table(nb)
    slides = ["a0.71-n1", "a0.5-n1", "a0.5-n2-stacking", "a0.5-n2-soft_voting", "a0.5-n2-combonet",
              "a0.25-n4-stacking", "a0.25-n4-soft_voting", "a0.25-n4-combonet"]
    beyond = sorted({c.row.split("-", 1)[1] for c in catalog.all_sweeps()["poellot_accuracy"].cells("smoke")}
                    - {*slides, "full"})
    assert list(rows) == slides + beyond
    ours = "digits_cnn CIFAR-10 (ours)"  # the smoke profile's base on the CIFAR-10 rows
    assert ours in columns
    assert all(rows[s]["VGG-16 CIFAR-10 (paper)"] == "NaN" and _filled(rows[s][ours]) for s in beyond)
    combonet = rows["a0.5-n2-combonet"]
    assert combonet["VGG-16 CIFAR-10 (paper)"] == "0.41" and combonet["VGG-16 Oxford-Pet (paper)"] == "1.63"
    assert rows["a0.71-n1"]["WRN CIFAR-10 (paper)"] == "NaN"  # blank on the slide
    for setting in ("a0.5-n2-stacking", "a0.5-n2-soft_voting", "a0.5-n2-combonet"):
        assert _filled(rows[setting][ours]) and rows[setting]["digits_cnn CIFAR-10 seeds"] == "1", rows[setting]
    runs = load_runs("poellot_accuracy", profile="smoke", status="FINISHED")
    accuracy = runs.groupby("row")["test_acc_at_best_val"].mean()  # over seeds, as the notebook's cells
    delta = accuracy["cifar10-a0.5-n2-stacking"] - accuracy["cifar10-full"]
    assert rows["a0.5-n2-stacking"][ours] == f"{delta:.2f}"
    printed = _printed(nb)
    assert f"{_smoke_cells('poellot_accuracy')} finished runs, profile smoke" in printed
    assert "matches harness_analysis.poellot.make_accuracy_table" in printed
    assert "with 2 Axes" in _figure_axes(nb)


def _check_calli(nb) -> None:
    """Table 3.2: our model and ResNet-20; ResNet-20 built is 0.27 M params, 19 convs + 1 dense = 20 layers,
    3 stages x 3 = 9 blocks, 40.55 M MACs (the thesis's ~40M); ours 1 + 6 x 4 + 1 = 26 layers, 6 blocks.
    Figure 3.1 and the nodes per cycle: two panels."""
    _, rows = _html_table(nb)
    assert list(rows) == ["calli_cifar", "resnet20"]
    small, resnet = rows["calli_cifar"], rows["resnet20"]
    paper = ("# params M (paper)", "# layers (paper)", "# blocks (paper)", "# ops (paper)", "top-1 % (paper)")
    assert [small[c] for c in paper] == ["0.12", "27", "6", "~13M", "91.10"]
    assert [resnet[c] for c in ("# params M (ours)", "# layers (ours)", "# blocks (ours)", "macs M (ours)")] \
        == ["0.270", "20", "9", "40.551"]
    assert resnet["# params M (paper)"] == "0.27" and resnet["top-1 % (paper)"] == "91.25"
    assert small["# layers (ours)"] == "26" and small["# blocks (ours)"] == "6"
    for r in (small, resnet):
        assert _filled(r["top-1 % max (ours)"], r["top-1 % mean (ours)"]) and r["seeds"] == "1", r
    printed = _printed(nb)
    for artifact, sweep in (("calli-table-3-2", "calli_table_3_2"), ("calli-figure-3.1", "calli_figure_3_1")):
        assert f"{artifact}: {_smoke_cells(sweep)} finished runs, profile smoke" in printed
    assert "matches harness_analysis.calli.make_table_3_2" in printed
    assert "with 2 Axes" in _figure_axes(nb)


def _check_jin(nb) -> None:
    """Table 3.1: its ten rows, dense 89.93 and binary approximation 79.69 - 89.93 = -10.24 beside ours; our dense
    row is its own reference (0.00, MAC saving 1.00), binary sparse kernels save MACs. Figure 3.3: two panels."""
    _, rows = _html_table(nb)
    assert list(rows) == ["dense", "sparse", "binary-heuristic", "binary-approx", "local-binary-heuristic",
                          "local-binary-approx", "cs-local-binary-256", "cs-local-binary-512", "cs-local-binary-1024",
                          "cs-local-binary-2048"]
    assert rows["dense"]["Test Accuracy % (paper)"] == "89.93"
    assert rows["binary-approx"]["vs dense (paper)"] == "-10.24"
    ours = "Test Accuracy % (ours, digits)"
    for row in ("dense", "binary-approx", "local-binary-heuristic", "cs-local-binary-256"):  # the smoke rows
        assert _filled(rows[row][ours], rows[row]["macs M (ours)"], rows[row]["train images/s (ours)"]), rows[row]
        assert rows[row]["seeds"] == "1"
    assert rows["dense"]["vs dense (ours)"] == "0.00" and rows["dense"]["MAC saving (ours)"] == "1.00"
    assert float(rows["binary-approx"]["MAC saving (ours)"]) > 1
    printed = _printed(nb)
    assert f"{_smoke_cells('jin_table_3_1')} finished runs, profile smoke" in printed
    assert "matches harness_analysis.jin.make_table_3_1" in printed
    assert "with 2 Axes" in _figure_axes(nb)


CHECKS = {"calli.ipynb": _check_calli, "jiang.ipynb": _check_jiang, "jin.ipynb": _check_jin,
          "poellot.ipynb": _check_poellot, "zheng.ipynb": _check_zheng}


def test_notebooks_are_found_and_saved_without_outputs():
    assert [p.name for p in NOTEBOOKS if p.name in CHECKS] == sorted(CHECKS)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.get("harness", {}).get("sweeps"), f"{path.name}: metadata harness.sweeps names no sweep"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: saved with outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_on_smoke_data(path, ray_session, tmp_path_factory, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    uri = smoke_store(tmp_path_factory, nb.metadata["harness"]["sweeps"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the kernel inherits this environment
    monkeypatch.setenv("HARNESS_PROFILE", "smoke")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # figures come back through the kernel's inline backend
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    tables = [o for o in _tagged_outputs(nb, "table") if "<table" in o.get("data", {}).get("text/html", "")]
    assert tables, f"{path.name}: the cell tagged 'table' shows no table"
    figures = [o for o in _tagged_outputs(nb, "figure") if "image/png" in o.get("data", {})]
    assert figures, f"{path.name}: the cell tagged 'figure' shows no figure"
    if path.name in CHECKS:
        CHECKS[path.name](nb)
