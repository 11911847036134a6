"""Sweep files and the artifacts (paper tables and figures) they feed.

A sweep file in ``sweeps/`` is data (YAML, never evaluated) and declares:
  name, paper          the sweep (= the MLflow experiment) and the paper's key
  artifacts            tables/figures rendered from its runs: id, kind, number, title, report
                       (``module:function`` of a ``make_`` function in ``analysis/``); ``runs: false``
                       for one computed from the built models alone (a count table)
  base                 the RunConfig shared by every cell (the paper protocol)
  rows                 the paper's rows: a ``label`` and a config overlay each
  axes                 further grid axes, ``dotted.key: [values]`` (seeds are one)
  profiles             paper / quick / smoke: ``config`` overlays, optional ``axes`` replacements and
                       optional ``rows`` (the labels of the rows the profile keeps; default all)
A cell is one (row x axes) point: its resolved config is checked before Ray starts.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from .config import RunConfig, apply_overrides, deep_merge
from .errors import ConfigError

PAPERS = ("zheng", "poellot", "calli", "jiang", "jin")
KINDS = ("table", "figure")
PROFILES = ("paper", "quick", "smoke")


def sweeps_dir() -> Path:
    return Path(os.environ.get("HARNESS_SWEEPS") or Path(__file__).resolve().parents[1] / "sweeps")


@dataclass(frozen=True)
class Artifact:
    id: str
    paper: str
    kind: str
    number: str
    title: str
    sweep: str
    report: str  # "module:function"
    runs: bool = True  # False: rendered from the built models alone (count tables), no runs needed


@dataclass(frozen=True)
class Cell:
    row: str
    config: dict  # resolved, checked RunConfig as a dict
    digest: str

    @property
    def name(self) -> str:
        return f"{self.row}-seed{self.config['train']['seed']}"


@dataclass(frozen=True)
class Sweep:
    name: str
    paper: str
    path: Path
    artifacts: tuple
    base: dict
    rows: tuple
    axes: dict
    profiles: dict = field(default_factory=dict)

    def cells(self, profile: str, dataset: Optional[str] = None, sets=()) -> list[Cell]:
        """Every grid point of ``profile``, resolved and checked (ConfigError before any work)."""
        if profile not in self.profiles:
            raise ConfigError("profile", profile, "one of " + ", ".join(self.profiles))
        prof = self.profiles[profile] or {}
        axes = {**self.axes, **(prof.get("axes") or {})}
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"axes.{key}", values, "a non-empty list of values")
        labels = [r["label"] for r in self.rows]
        keep = prof.get("rows") or labels
        for label in keep:
            if label not in labels:
                raise ConfigError(f"profiles.{profile}.rows", label, "a row label among " + ", ".join(labels))
        cells = []
        for row in (r for r in self.rows if r["label"] in keep):
            for point in itertools.product(*axes.values()):
                d = deep_merge(deep_merge(self.base, row.get("config") or {}), prof.get("config") or {})
                d = apply_overrides(d, dict(zip(axes.keys(), point)))
                if dataset:
                    d = apply_overrides(d, {"data.dataset": dataset})
                d = apply_overrides(d, sets)
                cfg = RunConfig.from_dict(d)
                cells.append(Cell(row=row["label"], config=cfg.to_dict(), digest=cfg.digest()))
        return cells


def _require(d: dict, key: str, where: str):
    if key not in d:
        raise ConfigError(f"{where}.{key}", None, "present")
    return d[key]


def load_sweep(path: Path) -> Sweep:
    with open(path) as f:
        d = yaml.safe_load(f) or {}
    where = path.name
    name, paper = _require(d, "name", where), _require(d, "paper", where)
    if paper not in PAPERS:
        raise ConfigError(f"{where}.paper", paper, "one of " + ", ".join(PAPERS))
    arts = []
    for a in _require(d, "artifacts", where):
        if a.get("kind") not in KINDS:
            raise ConfigError(f"{where}.artifacts.kind", a.get("kind"), "table or figure")
        arts.append(Artifact(id=a["id"], paper=paper, kind=a["kind"], number=str(a["number"]), title=a["title"],
                             sweep=name, report=a["report"], runs=bool(a.get("runs", True))))
    rows = tuple(d.get("rows") or [{"label": "default", "config": {}}])
    for r in rows:
        _require(r, "label", f"{where}.rows")
    profiles = d.get("profiles") or {}
    missing = [p for p in PROFILES if p not in profiles]
    if missing:
        raise ConfigError(f"{where}.profiles", sorted(profiles), "all of " + ", ".join(PROFILES))
    return Sweep(name=name, paper=paper, path=path, artifacts=tuple(arts), base=d.get("base") or {}, rows=rows,
                 axes=d.get("axes") or {}, profiles=profiles)


def all_sweeps() -> dict[str, Sweep]:
    out = {}
    for path in sorted(sweeps_dir().glob("*.yaml")):
        s = load_sweep(path)
        if s.name in out:
            raise ValueError(f"sweep name {s.name!r} appears in {out[s.name].path} and {path}")
        out[s.name] = s
    return out


def all_artifacts() -> dict[str, Artifact]:
    return {a.id: a for s in all_sweeps().values() for a in s.artifacts}


def resolve(target: str) -> tuple[Sweep, list[Artifact]]:
    """An artifact id, a sweep name or a sweep file path -> (its sweep, the artifacts to render)."""
    if target.endswith((".yaml", ".yml")) and Path(target).is_file():
        s = load_sweep(Path(target))
        return s, list(s.artifacts)
    sweeps = all_sweeps()
    if target in sweeps:
        return sweeps[target], list(sweeps[target].artifacts)
    for s in sweeps.values():
        for a in s.artifacts:
            if a.id == target:
                return s, [a]
    valid = sorted(a.id for s in sweeps.values() for a in s.artifacts) + sorted(sweeps)
    raise ConfigError("artifact", target, "an artifact id, sweep name or sweep file: " + ", ".join(valid))
