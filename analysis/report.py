"""Render an artifact from MLflow: tables as Markdown, CSV and LaTeX; figures as PNG and PDF.

A report function (``make_...`` in this package, named by the sweep file's ``report``) takes the
finished runs of one profile as a DataFrame (``harness.runs.load_runs``) and returns a
``Table`` or a ``Figure``; this module writes it with notes on how it was measured, the sweep's
protocol readings (``harness_analysis.protocol``) and, where the paper printed one run's number and
the runs have several seeds a row, "mean of n seeds; the paper: one run".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from harness import runs as recorded, catalog
from harness.sweepfile import PROFILES

from .protocol import notes as protocol_notes, seed_note

PROFILE_ORDER = PROFILES  # the most faithful recorded profile is reported by default


@dataclass
class Table:
    frame: pd.DataFrame
    notes: list = field(default_factory=list)


@dataclass
class Figure:
    figure: object  # matplotlib.figure.Figure
    notes: list = field(default_factory=list)


def mean_std(values: pd.Series, digits: int = 2, spread=lambda v: v.std(ddof=1)) -> str:
    """'92.41 ± 0.12 (n=3)': the mean ± ``spread`` of the values (the sample std unless told otherwise);
    a single value has no spread to show."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if v.empty:
        return "-"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f} (n=1)"
    return f"{v.mean():.{digits}f} ± {spread(v):.{digits}f} (n={len(v)})"


def _choose_profile(runs: pd.DataFrame, profile: Optional[str]) -> Optional[str]:
    if profile:
        return profile
    present = set(runs.get("profile", pd.Series(dtype=str)).dropna())
    return next((p for p in PROFILE_ORDER if p in present), None)


@dataclass
class Built:
    """An artifact built from its runs: the Table or Figure, every note its files carry, and the finished
    runs of the one profile it was built from (None for a count table, which reads no runs)."""
    result: object
    notes: list
    runs: Optional[pd.DataFrame] = None
    profile: Optional[str] = None


def render(artifact: catalog.Artifact, out: Path, tracking_uri: Optional[str] = None,
           profile: Optional[str] = None) -> list[Path]:
    """Write the artifact's files under ``out``; return their paths ([] when nothing is recorded)."""
    built = build(artifact, tracking_uri, profile)
    return [] if built is None else write(artifact, built, out)


def build(artifact: catalog.Artifact, tracking_uri: Optional[str] = None, profile: Optional[str] = None,
          runs: Optional[pd.DataFrame] = None) -> Optional[Built]:
    """The artifact's Table or Figure and its notes; None when nothing is recorded. ``runs``: the sweep's
    FINISHED runs as ``load_runs`` gives them, when the caller has read them already."""
    sweep, _ = catalog.resolve(artifact.sweep_file or artifact.sweep)
    if not artifact.runs:
        return _built(artifact, catalog.report_function(artifact)(None, **artifact.options),
                      protocol_notes(sweep.name))
    if runs is None:
        runs = recorded.load_runs(artifact.sweep_file or artifact.id, tracking_uri, status="FINISHED")
    profile = _choose_profile(runs, profile)
    if profile is None or runs.empty:
        return None
    attrs = runs.attrs
    runs = runs[runs["profile"] == profile]
    runs.attrs = dict(attrs)
    if runs.empty:
        return None
    runs.attrs["sweep"] = sweep.name  # for builders that read more of the sweep's runs (per-epoch history)
    if sweep.is_search:
        runs.attrs["objectives"] = sweep.objectives(profile)
    result = catalog.report_function(artifact)(runs, **artifact.options)
    paper_dataset = (sweep.base.get("data") or {}).get("dataset")
    measured = sorted(set(runs["dataset"].dropna()))
    notes = [f"Profile `{profile}`: {len(runs)} finished runs of sweep `{sweep.name}` ({sweep.path.name})."]
    if paper_dataset and measured != [paper_dataset]:
        notes.append(f"Measured on {', '.join(measured)} instead of the paper's {paper_dataset}: "
                     "compare trends (relative changes), not absolute accuracies.")
    paper_model = (sweep.base.get("model") or {}).get("name")
    models_used = sorted(set(runs.get("config.model.name", pd.Series(dtype=str)).dropna()))
    if paper_model and models_used and models_used != [paper_model] and not sweep.is_search:  # a search samples models
        notes.append(f"Model {', '.join(models_used)} instead of the paper's {paper_model} (this profile's choice).")
    trained = training_note(runs)
    if trained:
        notes.append(trained)
    if profile != "paper":
        notes.append(f"The `{profile}` profile shortens the paper's protocol (fewer epochs or a subset); "
                     "see the sweep file.")
    seeds = seed_note(runs, sweep.name)
    if seeds:
        notes.append(seeds)
    return _built(artifact, result, notes + protocol_notes(sweep.name), runs, profile)


def training_note(runs: pd.DataFrame) -> str:
    """How the runs trained, from their tags: "Trained in fp32 on the resident loader (digits)."; one
    clause per distinct (precision, loader), "" when no run carries a precision tag (runs recorded
    before precision was a choice, which trained in bf16 on a GPU and fp32 on a CPU)."""
    if "precision" not in runs:
        return ""
    columns = [c for c in ("precision", "loader", "dataset") if c in runs]
    tagged = runs[columns].dropna(subset=["precision"]).fillna("").astype(str)
    if tagged.empty:
        return ""
    if "loader" not in tagged:  # an experiment's runs read their data themselves: no loader tag
        tagged = tagged.assign(loader="")
    clauses = []
    for (precision, loader), group in tagged.groupby(["precision", "loader"], sort=True):
        where = f" on the {loader} loader" if loader else ""
        datasets = ", ".join(sorted(set(group["dataset"]) - {""})) if "dataset" in group else ""
        clauses.append(f"{precision}{where}" + (f" ({datasets})" if datasets else ""))
    return "Trained in " + "; ".join(clauses) + "."


# docs/fidelity.md's section per paper: every reading of the paper that a reproducer could dispute,
# with the seed's line and what it changes, measured (tests/test_fidelity_doc.py keeps the anchors).
FIDELITY_SECTIONS = ("zheng", "poellot", "calli", "jiang", "jin")


def _built(artifact: catalog.Artifact, result, notes: list, runs=None, profile=None) -> Built:
    notes = notes + result.notes
    if artifact.paper in FIDELITY_SECTIONS:
        notes.append(f"How this paper is read, each reading with its numbers: docs/fidelity.md#{artifact.paper}.")
    return Built(result, notes, runs, profile)


def title(artifact: catalog.Artifact) -> str:
    return f"{artifact.paper.capitalize()} {artifact.kind} {artifact.number}: {artifact.title}"


def write(artifact: catalog.Artifact, built: Built, out: Path) -> list[Path]:
    """The built artifact's files under ``out``: .md, .csv and .tex for a table; .png, .pdf and .md for a figure."""
    result, notes = built.result, built.notes
    out.mkdir(parents=True, exist_ok=True)
    def path(ext: str) -> Path:  # not with_suffix: figure ids such as jiang-figure-4.1 contain dots
        return out / f"{artifact.id}.{ext}"

    title_text = title(artifact)
    if isinstance(result, Table):
        frame = result.frame
        paths = [path("md"), path("csv"), path("tex")]
        body = frame.to_markdown(index=False, disable_numparse=True)  # "0.10" and "+0.5" as written
        paths[0].write_text(f"# {title_text}\n\n{body}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
        frame.to_csv(paths[1], index=False)
        paths[2].write_text(frame.to_latex(index=False, caption=title_text, label=f"tab:{artifact.id}"))
        return paths
    import matplotlib.pyplot as plt

    fig = result.figure
    fig.suptitle(title_text, fontsize=9)
    paths = [path("png"), path("pdf"), path("md")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    paths[2].write_text(f"# {title_text}\n\n![{artifact.id}]({paths[0].name})\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    return paths
