"""docs/fidelity.md stays true to the code it cites (issue 15).

It has one section per paper, anchored where every report's last note points
(``harness_analysis.report.FIDELITY_SECTIONS``), each naming its seed text; every file it cites exists, and
every ``tests/<file>.py::<test>`` it cites is a test defined in that file, so a renamed test or a
moved module shows up here rather than as a dead reference in the one place readers go to judge
the readings.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness_analysis.report import FIDELITY_SECTIONS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fidelity.md"
SEEDS = {"zheng": "000_c7321f4be5d60ab6.txt", "poellot": "001_cee262542942a8b3.txt",
         "calli": "002_7fd01c0de6b14536.txt", "jiang": "003_5d40fba980dec361.txt",
         "jin": "004_1e4f7f5494b4efef.txt"}
CITED = re.compile(r"\b((?:harness|analysis|sweeps|tests|benchmarks)/[\w/.-]*\.(?:py|yaml|sh|ipynb))(?:::(\w+))?")


def _sections(text: str) -> dict[str, str]:
    """anchor -> the text from its <a id> to the next one."""
    pieces = re.split(r'<a id="(\w+)"></a>\n', text)
    return dict(zip(pieces[1::2], pieces[2::2]))


def test_one_section_per_paper_with_its_seed_and_the_accuracy_section():
    sections = _sections(DOC.read_text())
    assert list(sections) == [*FIDELITY_SECTIONS, "accuracy"]
    for paper, body in sections.items():
        if paper in SEEDS:
            heading = body.splitlines()[0]
            assert heading.startswith("## ") and SEEDS[paper] in heading, (paper, heading)
            assert body.count("\n### ") >= 2, f"{paper}: fewer than two readings"
    assert "GPU" in sections["accuracy"]


def test_every_cited_file_and_test_exists():
    cited = sorted(set(CITED.findall(DOC.read_text())))
    assert len(cited) >= 20
    missing = [path for path, _ in cited if not (ROOT / path).exists()]
    assert not missing, f"docs/fidelity.md cites files that do not exist: {missing}"
    for path, name in cited:
        if name:
            source = (ROOT / path).read_text()
            assert re.search(rf"^(def|class) {name}\b|^\s+def {name}\b|^{name} =", source, re.M), \
                f"docs/fidelity.md cites {path}::{name}, which {path} does not define"
