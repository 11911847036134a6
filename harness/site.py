"""``harness site``: every artifact with recorded runs, and every count table, as a static HTML site.

``build(out, ...)`` writes under ``out``:
  index.html          one section per paper (a plugin's papers too): each artifact's title, profile,
                      runs, dataset, and whether that is the paper's protocol (the paper profile on the
                      paper's dataset), said plainly; the artifacts without runs listed after
  <artifact id>.html  the artifact's table (the builders' columns: the paper's values beside ours) or
                      figure, its notes, the runs it came from (linked to the MLflow UI with
                      ``mlflow_url``) and the environment they recorded (versions, device, git SHA)
  cross.html          the artifacts of the cross-paper sweeps (paper ``cross``), whatever they declare
  fidelity.html       docs/fidelity.md, which the notes link to (where the checkout has it)
  files/              what ``harness report`` writes per artifact (Markdown, CSV, LaTeX, PNG, PDF)
  style.css, sort.js  the page style (readable on a phone) and the click-to-sort tables

Each sweep's runs are read once, in bulk (``harness.runs.load_runs``: pages of ``search_runs`` and the
run cache), and every artifact of the sweep is built from that one frame (``harness_analysis.report.build``).
The pages are written by Jinja2 templates (package data, harness/templates/); they open from disk.
"""
from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from . import catalog, markdown, shipped, tracking
from .errors import ConfigError

TEMPLATES = Path(__file__).parent / "templates"
STATIC = ("style.css", "sort.js")
CROSS_PAPER = "cross"  # the paper name of a sweep over the papers' techniques together (cross_paper_pareto.yaml)
# the tags a trial records about where it ran (harness.tracking.environment_tags, TrialRun); synthetic: a
# benchmark's made-up runs (benchmarks/site_scale.py)
ENVIRONMENT_TAGS = ("synthetic", "git_sha", "device", "host", "python_version", "torch_version", "mlflow_version",
                    "ray_version", "cuda_version", "cudnn_version", "nvidia_driver_version", "lock_digest", "precision",
                    "loader")
RUN_COLUMNS = ("run_name", "status", "row", "seed", "dataset", "val_acc", "test_acc", "params", "macs",
               "train_time_s", "start_time")


@dataclass
class Page:
    """One artifact as the index and its page show it."""
    artifact: catalog.Artifact
    title: str
    file: str = ""  # its page, "" when it has no runs
    kind: str = ""  # "table" or "figure"
    profile: Optional[str] = None
    runs: int = 0
    datasets: list = field(default_factory=list)
    protocol: str = ""  # the plain sentence: the paper's protocol or not, and why
    paper_protocol: bool = False
    table_html: str = ""
    image: str = ""
    downloads: list = field(default_factory=list)
    notes_html: list = field(default_factory=list)
    fidelity: str = ""
    runs_html: str = ""
    environment: list = field(default_factory=list)  # (tag, [(value, runs)])
    source: str = ""


def _environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


def page_name(artifact_id: str) -> str:
    return f"{artifact_id}.html"


def fidelity_doc() -> Optional[Path]:
    """docs/fidelity.md of the checkout harness runs from (an installed wheel ships no docs/)."""
    root = shipped.checkout()
    path = root / "docs" / "fidelity.md" if root else None
    return path if path and path.is_file() else None


def _note_html(note: str, fidelity: bool) -> str:
    if fidelity:  # the report's pointer to docs/fidelity.md becomes a link to the rendered page
        note = re.sub(r"docs/fidelity\.md#([\w-]+)", r"[docs/fidelity.md#\1](fidelity.html#\1)", note)
    return markdown.inline(note)


def _protocol(sweep, profile: str, datasets: list) -> tuple[bool, str]:
    paper_dataset = (sweep.base.get("data") or {}).get("dataset")
    measured = ", ".join(datasets) or "no recorded dataset"
    if profile == "paper" and (paper_dataset is None or datasets == [paper_dataset]):
        return True, f"The paper's protocol: the paper profile on {measured}."
    why = []
    if profile != "paper":
        why.append(f"the {profile} profile, not the paper profile")
    if paper_dataset and datasets != [paper_dataset]:
        why.append(f"{measured} instead of the paper's {paper_dataset}")
    return False, "Not the paper's protocol: " + "; ".join(why) + "."


def _runs_table(runs: pd.DataFrame, mlflow_url: Optional[str], experiment_id: Optional[str]) -> str:
    """The runs as a sortable table, each run's id linked to its page in the MLflow UI when ``mlflow_url`` is given."""
    shown = runs.reindex(columns=[c for c in RUN_COLUMNS if c in runs]).copy()
    if "start_time" in shown:
        shown["start_time"] = shown["start_time"].dt.strftime("%Y-%m-%d %H:%M")
    for column in shown:  # escaped here: the link column below is HTML, so to_html escapes nothing
        shown[column] = shown[column].map(lambda v: html.escape(v) if isinstance(v, str) else v)
    if mlflow_url and experiment_id:
        base = html.escape(mlflow_url.rstrip("/"))
        shown.insert(0, "MLflow run", [f'<a href="{base}/#/experiments/{experiment_id}/runs/{rid}">{rid[:8]}</a>'
                                       for rid in runs["run_id"]])
    else:
        shown.insert(0, "run_id", runs["run_id"].str[:8])
    return shown.to_html(index=False, border=0, classes="sortable", na_rep="", escape=False,
                         float_format="{:.4g}".format)


def _environment_rows(runs: pd.DataFrame) -> list:
    rows = []
    for tag in ENVIRONMENT_TAGS:
        if tag in runs:
            counts = runs[tag].dropna().astype(str).value_counts()
            if not counts.empty:
                rows.append((tag, list(counts.items())))
    return rows


def _paper_order(papers) -> list:
    from harness_analysis.report import FIDELITY_SECTIONS

    known = [p for p in FIDELITY_SECTIONS if p in papers]
    return known + sorted(p for p in papers if p not in known and p != CROSS_PAPER) + \
        ([CROSS_PAPER] if CROSS_PAPER in papers else [])


def build(out: Path, tracking_uri: Optional[str] = None, profile: Optional[str] = None,
          mlflow_url: Optional[str] = None, progress=print) -> dict:
    """Write the site under ``out``; returns {"pages": [Page], "uri": store}."""
    from harness_analysis import report

    from . import listing, runs as recorded

    sweeps = catalog.all_sweeps()
    for s in sweeps.values():
        for a in s.artifacts:
            catalog.report_function(a)  # a report that does not exist fails before any run is read
    uri = tracking.resolve_uri(tracking_uri)
    store = tracking.check_readable(uri)
    if not store and any(a.runs for s in sweeps.values() for a in s.artifacts):
        raise ConfigError("tracking_uri", uri, recorded.NO_STORE)
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    fidelity = fidelity_doc()
    client = tracking.client(uri) if store else None
    pages = []
    for sweep in sweeps.values():
        frame, experiment_id = None, None
        if store and any(a.runs for a in sweep.artifacts):
            experiment = client.get_experiment_by_name(sweep.name)
            if experiment is not None:
                experiment_id = experiment.experiment_id
                frame = recorded.load_runs(f"{sweep.path}#{sweep.name}", uri, status="FINISHED")
        for a in sweep.artifacts:
            page = Page(artifact=a, title=report.title(a), kind=a.kind, source=listing.source(sweep))
            pages.append(page)
            if a.runs and frame is None:
                continue
            built = report.build(a, uri, profile, runs=frame if a.runs else None)
            if built is None:
                continue
            written = report.write(a, built, files)
            progress(f"wrote {page_name(a.id)} ({', '.join(p.name for p in written)})")
            page.file = page_name(a.id)
            page.downloads = [f"files/{p.name}" for p in written]
            page.fidelity = f"fidelity.html#{a.paper}" if fidelity and a.paper in report.FIDELITY_SECTIONS else ""
            page.notes_html = [_note_html(n, bool(fidelity)) for n in built.notes]
            if isinstance(built.result, report.Table):
                page.table_html = built.result.frame.to_html(index=False, border=0, classes="sortable", na_rep="")
            else:
                page.image = next(f"files/{p.name}" for p in written if p.suffix == ".png")
            if built.runs is not None:
                runs = built.runs
                page.profile, page.runs = built.profile, len(runs)
                page.datasets = sorted(set(runs["dataset"].dropna())) if "dataset" in runs else []
                page.paper_protocol, page.protocol = _protocol(sweep, built.profile, page.datasets)
                page.runs_html = _runs_table(runs, mlflow_url, experiment_id)
                page.environment = _environment_rows(runs)
            else:
                page.protocol = "Counted from the built models: no training runs, no protocol to match."
    _write_pages(out, pages, uri, fidelity, mlflow_url)
    return {"pages": pages, "uri": uri}


def _write_pages(out: Path, pages: list, uri: str, fidelity: Optional[Path], mlflow_url: Optional[str]) -> None:
    env = _environment()
    papers = _paper_order({p.artifact.paper for p in pages})
    by_paper = [(paper, [p for p in pages if p.artifact.paper == paper]) for paper in papers]
    common = dict(uri=uri, has_fidelity=fidelity is not None, has_cross=CROSS_PAPER in papers)
    for name in STATIC:
        shutil.copyfile(TEMPLATES / name, out / name)
    (out / "index.html").write_text(env.get_template("index.html").render(
        by_paper=by_paper, pages=pages, mlflow_url=mlflow_url, **common))
    for page in pages:
        if page.file:
            (out / page.file).write_text(env.get_template("artifact.html").render(page=page, **common))
    if CROSS_PAPER in papers:
        cross = [p for p in pages if p.artifact.paper == CROSS_PAPER]
        (out / "cross.html").write_text(env.get_template("cross.html").render(cross=cross, **common))
    if fidelity is not None:
        def link(target: str) -> Optional[str]:
            return target if target.startswith(("#", "http://", "https://")) else None

        body = markdown.render(fidelity.read_text(), link)
        (out / "fidelity.html").write_text(env.get_template("doc.html").render(
            title="Fidelity: how each paper is read", body=body, **common))


def main(args) -> int:
    """``harness site``: the checks of its flags, then ``build``."""
    from .errors import writable_folder

    writable_folder("--out", args.out)
    if args.mlflow_url is not None and not args.mlflow_url.startswith(("http://", "https://")):
        raise ConfigError("--mlflow-url", args.mlflow_url, "the MLflow UI's address, http://HOST:PORT")
    out = Path(args.out)
    built = build(out, tracking_uri=args.tracking_uri, profile=args.report_profile, mlflow_url=args.mlflow_url)
    shown = [p for p in built["pages"] if p.file]
    print(f"site of {len(shown)} artifacts ({len(built['pages']) - len(shown)} without runs) in {out}: "
          f"open {out / 'index.html'}")
    return 0
