"""analysis.report: a table is written as md, csv and tex with its cells exactly as the report made them."""
import pandas as pd

from analysis.report import Table, _write
from harness.catalog import Artifact


def test_table_cells_keep_trailing_zeros_and_signs(tmp_path):
    artifact = Artifact(id="t-table-1", paper="jiang", kind="table", number="1", title="T", sweep="t", report="x:y")
    frame = pd.DataFrame({"top-1 %": ["92.10", "-"], "delta": ["+0.50", "-1.20"], "macs": [40551040, 270000]})
    paths = _write(artifact, Table(frame, ["a note"]), ["profile note"], tmp_path)
    assert [p.name for p in paths] == ["t-table-1.md", "t-table-1.csv", "t-table-1.tex"]
    md = paths[0].read_text()
    assert "92.10" in md and "+0.50" in md and "-1.20" in md and "40551040" in md
    assert "- profile note\n- a note" in md
    assert "+0.50" in paths[1].read_text() and "92.10" in paths[2].read_text()
