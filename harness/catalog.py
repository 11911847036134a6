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
                       optional ``rows`` (the labels of the rows the profile keeps; default all), and
                       for a search, a ``search`` overlay (fewer samples, another scheduler)
  search               instead of rows: a space sampled by a Ray Tune searcher (harness.search), each
                       sampled configuration run once per axes point
A cell is one (row x axes) point: its resolved config is checked before Ray starts. A search's
samples are checked as they are drawn, and its space, before Ray starts (``SearchPlan``).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from . import search as search_space
from .config import RunConfig, apply_overrides, deep_merge
from .errors import ConfigError

PAPERS = ("zheng", "poellot", "calli", "jiang", "jin", "cross")  # cross: one design space over all five
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
    options: dict = field(default_factory=dict)  # keyword arguments of the report function (data from the sweep file)
    sweep_file: str = ""  # the sweep file it came from: a user's file outside sweeps/ works as a shipped one


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
    search: Optional[dict] = None  # the search: block as written; see search_plan

    @property
    def is_search(self) -> bool:
        return self.search is not None

    def _axes(self, profile: str) -> dict:
        if profile not in self.profiles:
            raise ConfigError("profile", profile, "one of " + ", ".join(self.profiles))
        axes = {**self.axes, **((self.profiles[profile] or {}).get("axes") or {})}
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"axes.{key}", values, "a non-empty list of values")
        return axes

    def objectives(self, profile: Optional[str] = None) -> dict:
        """A search's objectives (profile overlay applied): what its Pareto reports are drawn over."""
        prof = (self.profiles.get(profile) or {}) if profile else {}
        raw = search_space.overlay(self.search, prof.get("search")) or {}
        return dict(raw.get("objectives") or {})

    def search_plan(self, profile: str, dataset: Optional[str] = None, sets=(), num_samples: Optional[int] = None,
                    seed: Optional[int] = None) -> "SearchPlan":
        """The search of ``profile``, its space checked against the config (ConfigError before any work)."""
        axes = self._axes(profile)
        if not self.is_search:
            raise ConfigError("--num-samples" if num_samples else "search", num_samples,
                              f"a sweep with a search: block ({self.path.name} is a grid; run it without --num-samples)")
        prof = self.profiles[profile] or {}
        raw = dict(search_space.overlay(self.search, prof.get("search")))
        if num_samples is not None:
            raw["num_samples"] = num_samples
        if seed is not None:
            raw["seed"] = seed
        spec = search_space.parse_search(raw)
        base = deep_merge(self.base, prof.get("config") or {})
        if dataset:
            base = apply_overrides(base, {"data.dataset": dataset})
        set_items = dict(_set_keys(sets))
        base = apply_overrides(base, sets)
        for key in spec.space:
            search_space.check_key(f"search.space.{key}", key)
            for other, what in [(a, "a grid axis") for a in axes] + [(k, "a --set override") for k in set_items]:
                if key == other or key.startswith(other + ".") or other.startswith(key + "."):
                    raise ConfigError(f"search.space.{key}", other, f"a key that is not also {what}")
        plan = SearchPlan(spec=spec, base=base, axes=axes)
        for key, value in search_space.corners(spec):
            try:
                plan.resolve({key: value}, 0)
            except ConfigError as e:
                raise ConfigError(f"search.space.{key}", value, f"a value valid on the sweep's base config ({e})") from None
        return plan

    def cells(self, profile: str, dataset: Optional[str] = None, sets=()) -> list[Cell]:
        """Every grid point of ``profile``, resolved and checked (ConfigError before any work)."""
        axes = self._axes(profile)
        if self.is_search:
            raise ConfigError("sweep", self.name, "a grid sweep: this one searches (harness run samples it)")
        prof = self.profiles[profile] or {}
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


def _set_keys(sets) -> list[tuple[str, object]]:
    from .config import _split_set

    return list(sets.items()) if isinstance(sets, dict) else [_split_set(s) for s in sets]


@dataclass(frozen=True)
class SearchPlan:
    """A search as a trial needs it: the spec, the base config (profile, --dataset and --set applied)
    and the grid axes each sample runs over. Plain data, so it travels in the trial's config."""

    spec: "search_space.SearchSpec"
    base: dict
    axes: dict

    @property
    def points(self) -> list[dict]:
        return [dict(zip(self.axes, p)) for p in itertools.product(*self.axes.values())]

    def resolve(self, values: dict, point: int) -> RunConfig:
        """The checked config of sampled ``values`` at axis point ``point``."""
        return RunConfig.from_dict(apply_overrides(search_space.apply_values(self.base, values), self.points[point]))

    def cell(self, values: dict, sample_id: int, point: int) -> Cell:
        cfg = self.resolve(values, point)
        return Cell(row=f"sample{sample_id:03d}", config=cfg.to_dict(), digest=cfg.digest())

    def name(self, sample_id: int, point: Optional[int]) -> str:
        """sample007 (the configuration), sample007-seed2 (one of its trials), as grid cells are named."""
        if point is None:
            return f"sample{sample_id:03d}"
        seed = self.points[point].get("train.seed", (self.base.get("train") or {}).get("seed", 0))
        return f"sample{sample_id:03d}-seed{seed}" + (f"-p{point}" if "train.seed" not in self.axes and
                                                      len(self.points) > 1 else "")

    def counts(self, cfg: RunConfig) -> dict:
        """params, macs, ... of the model ``cfg`` builds, counted on the meta device from the
        dataset's registered shape (no data read), as measure.profile counts them in the trial."""
        from . import data, measure

        shape, classes = data.nominal_shape(cfg.data.dataset, cfg.data.image_size, cfg.data.classes)
        counts = measure.profile_model(cfg.model.name, {**cfg.model.options, "num_classes": classes}, shape)
        return {k: counts[k] for k in search_space.COUNTS}

    def payload(self) -> dict:
        return {"search": self.spec.raw, "base": self.base, "axes": self.axes}

    @classmethod
    def from_payload(cls, payload: dict) -> "SearchPlan":
        return cls(spec=search_space.parse_search(payload["search"]), base=payload["base"], axes=payload["axes"])


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
                             sweep=name, report=a["report"], runs=bool(a.get("runs", True)),
                             options=dict(a.get("options") or {}), sweep_file=str(path)))
    if d.get("search") is not None and d.get("rows"):
        raise ConfigError(f"{where}.rows", [r.get("label") for r in d["rows"]],
                          "absent beside search: (a search samples its configurations; shared settings go in base)")
    rows = tuple(d.get("rows") or [{"label": "default", "config": {}}])
    for r in rows:
        _require(r, "label", f"{where}.rows")
    profiles = d.get("profiles") or {}
    missing = [p for p in PROFILES if p not in profiles]
    if missing:
        raise ConfigError(f"{where}.profiles", sorted(profiles), "all of " + ", ".join(PROFILES))
    return Sweep(name=name, paper=paper, path=path, artifacts=tuple(arts), base=d.get("base") or {}, rows=rows,
                 axes=d.get("axes") or {}, profiles=profiles, search=d.get("search"))


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
