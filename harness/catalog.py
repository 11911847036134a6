"""Sweep files and the artifacts (paper tables and figures) they feed.

A sweep file in ``sweeps/`` is data (YAML, never evaluated) and declares:
  name, paper          the sweep (= the MLflow experiment) and its paper: any name (``harness list --paper``)
  plugins, published   the user's own code it needs (harness.plugins: module names, or .py files and package
                       folders relative to this file) and its paper's published values (a YAML file beside it,
                       read as harness_analysis/published/<paper>.yaml is)
  artifacts            tables/figures rendered from its runs: id, kind, number, title, report
                       (``module:function`` of a ``make_`` function in ``harness_analysis``, the folder
                       analysis/); ``runs: false``
                       for one computed from the built models alone (a count table)
  base                 the RunConfig shared by every cell (the paper protocol)
  rows                 the paper's rows: a ``label`` and a config overlay each
  axes                 further grid axes, ``dotted.key: [values]`` (seeds are one)
  profiles             paper / quick / smoke: ``config`` overlays, optional ``axes`` replacements and
                       optional ``rows`` (the labels of the rows the profile keeps; default all), and
                       for a search, a ``search`` overlay (fewer samples, another scheduler)
  search               instead of rows: a space sampled by a Ray Tune searcher (harness.search), each
                       sampled configuration run once per axes point
  extends              another sweep file (path relative to this one), deep-merged under this file:
                       this file's keys win, lists replace the parent's
  row_template         rows generated after ``rows``: a ``label`` and ``config`` in which "{key}" is
                       substituted, over the product of ``product: {factor: [values]}`` (a value that is
                       a mapping binds its keys, a scalar binds the factor's name)
  sweeps               several sweeps in one file: each entry (its own ``name``) deep-merged over the
                       file's other keys; such a sweep is addressed as ``<file>#<name>``
A cell is one (row x axes) point: its resolved config is checked before Ray starts. A search's
samples are checked as they are drawn, and its space, before Ray starts (``SearchPlan``).
"""
from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import plugins as plugin_modules
from . import search as search_space
from . import shipped
from .checks import checked
from .config import RunConfig, apply_overrides, deep_merge
from .errors import ConfigError
from .sweepfile import KEYS, PROFILES, ROW_KEYS, check_label, refuse_unknown, require as _require, typed as _typed
from .sweepfile import read as _read, template_rows as _template_rows

KINDS = ("table", "figure")
ARTIFACT_KEYS = ("id", "kind", "number", "title", "report", "runs", "options")
PROFILE_KEYS = ("config", "axes", "rows", "search")
VARIANT_KEYS = tuple(k for k in KEYS if k not in ("extends", "sweeps"))  # what one entry of sweeps: may set


def sweeps_dir() -> Path:
    """$HARNESS_SWEEPS, else the checkout's sweeps/, else the installed wheel's (harness.shipped)."""
    return shipped.sweeps_dir()


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
    plugins: tuple = ()  # the plugin entries its file names (harness.plugins), imported when it was read

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
                    seed: Optional[int] = None, algorithm: Optional[str] = None) -> "SearchPlan":
        """The search of ``profile``, its space checked against the config (ConfigError before any work)."""
        axes = self._axes(profile)
        if not self.is_search:
            raise ConfigError("--num-samples" if num_samples else "search", num_samples,
                              f"a sweep with a search: block ({self.path.name} is a grid; run it without --num-samples, "
                              "--search-seed or --algorithm)")
        prof = self.profiles[profile] or {}
        raw = dict(search_space.overlay(self.search, prof.get("search")))
        if num_samples is not None:
            raw["num_samples"] = num_samples
        if seed is not None:
            raw["seed"] = seed
        if algorithm is not None:
            raw["algorithm"] = algorithm
        spec = search_space.parse_search(raw)
        base = deep_merge(self.base, prof.get("config") or {})
        if dataset is not None:
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
        """Every grid point of ``profile``, resolved and checked (ConfigError before any work). A ``--set`` of
        an axis's key replaces that axis (one value, not the axis's cells made equal and run N times)."""
        overridden = {key for key, _ in _set_keys(sets)}
        axes = {key: values for key, values in self._axes(profile).items() if key not in overridden}
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
                if dataset is not None:
                    d = apply_overrides(d, {"data.dataset": dataset})
                d = apply_overrides(d, sets)
                cfg = checked(d)  # the config, then its model and method (harness.checks)
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
        return checked(apply_overrides(search_space.apply_values(self.base, values), self.points[point]))

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


def load_sweeps(path: Path) -> list[Sweep]:
    """Every sweep a file declares: one, or one per entry of its ``sweeps:`` list."""
    d = _read(path)
    variants = d.pop("sweeps", None)
    if variants is None:
        return [_build(d, path, path.name, str(path))]
    _typed(variants, list, f"{path.name}.sweeps", "a non-empty list of sweep overlays", optional=False)
    out = []
    for i, v in enumerate(variants):
        v = _typed(v, dict, f"{path.name}.sweeps[{i}]", "a mapping (a sweep overlay with its own name)", optional=False)
        name = _typed(_require(v, "name", f"{path.name}.sweeps[{i}]"), str, f"{path.name}.sweeps[{i}].name", "a string",
                      optional=False)
        if name in [s.name for s in out]:
            raise ConfigError(f"{path.name}.sweeps[{i}].name", name, "a sweep name no other entry uses")
        refuse_unknown(v, VARIANT_KEYS, f"{path.name}.sweeps[{i}]", "a sweep key: one of " + ", ".join(VARIANT_KEYS))
        out.append(_build(deep_merge(d, v), path, f"{path.name}#{name}", f"{path}#{name}"))
    return out


def load_sweep(path: Path, name: Optional[str] = None) -> Sweep:
    """The sweep of a one-sweep file, or the one called ``name`` of a file of several."""
    sweeps = load_sweeps(path)
    if name is None and len(sweeps) == 1:
        return sweeps[0]
    for s in sweeps:
        if s.name == name:
            return s
    raise ConfigError("sweep", name, f"one of the sweeps of {path.name}, as {path.name}#<name>: "
                      + ", ".join(s.name for s in sweeps))


def _build(d: dict, path: Path, where: str, address: str) -> Sweep:
    name, paper = _require(d, "name", where), _require(d, "paper", where)
    _typed(name, str, f"{where}.name", "a string (the MLflow experiment)", optional=False)
    _typed(paper, str, f"{where}.paper", "a paper's name (any string: harness list --paper filters by it)",
           optional=False)
    if d.get("published") is not None:  # first: a plugin's builder may read its values as it is imported
        published = _typed(d["published"], str, f"{where}.published", "a YAML file of published values")
        plugin_modules.add_published(paper, path.parent / published, f"{where}.published")
    loaded = plugin_modules.load(d.get("plugins") or [], path.parent, f"{where}.plugins")  # before any name is checked
    arts = []
    for i, a in enumerate(_typed(_require(d, "artifacts", where), list, f"{where}.artifacts", "a list of artifacts",
                                 optional=False)):
        at = f"{where}.artifacts[{i}]"
        _typed(a, dict, at, "a mapping of id, kind, number, title, report", optional=False)
        refuse_unknown(a, ARTIFACT_KEYS, at, "an artifact key: one of " + ", ".join(ARTIFACT_KEYS))
        if a.get("kind") not in KINDS:
            raise ConfigError(f"{at}.kind", a.get("kind"), "table or figure")
        for key in ("id", "title", "report"):
            _typed(_require(a, key, at), str, f"{at}.{key}", "a string", optional=False)
        if a["report"].count(":") != 1:
            raise ConfigError(f"{at}.report", a["report"],
                              "module:function, e.g. harness_analysis.jiang:make_performance_table")
        arts.append(Artifact(id=a["id"], paper=paper, kind=a["kind"], number=str(_require(a, "number", at)),
                             title=a["title"], sweep=name, report=a["report"], runs=bool(a.get("runs", True)),
                             options=dict(_typed(a.get("options"), dict, f"{at}.options", "a mapping") or {}),
                             sweep_file=address))
    if d.get("search") is not None and (d.get("rows") is not None or d.get("row_template")):
        raise ConfigError(f"{where}.rows", d["rows"] if d.get("rows") is not None else "row_template",
                          "absent beside search: (a search samples its configurations; shared settings go in base)")
    _typed(d.get("search"), dict, f"{where}.search", "a mapping (see README: Search)")
    written = _typed(d.get("rows"), list, f"{where}.rows", "a list of rows") or []
    rows = written + _template_rows(d.get("row_template"), f"{where}.row_template")
    if not rows and d.get("rows") is not None:  # no rows: key at all is the one default row; [] is a mistake
        raise ConfigError(f"{where}.rows", d["rows"], "at least one row (or no rows: key, for one default row)")
    rows = tuple(rows or [{"label": "default", "config": {}}])
    for i, r in enumerate(rows):
        at = (f"{where}.rows[{i}]" if i < len(written) or not d.get("row_template")
              else f"{where}.row_template[{i - len(written)}]")  # the template's generated rows, counted from 0
        _typed(r, dict, at, "a mapping of label and config", optional=False)
        refuse_unknown(r, ROW_KEYS, at, "a row key: label or config")
        _typed(_require(r, "label", f"{where}.rows"), str, f"{at}.label", "a string", optional=False)
        check_label(r["label"], f"{at}.label")
        _typed(r.get("config"), dict, f"{at}.config", "a mapping (a config overlay)")
    labels = [r["label"] for r in rows]
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            raise ConfigError(f"{where}.rows[{i}].label", label, "a label no other row has")
    base = _typed(d.get("base"), dict, f"{where}.base", "a mapping (a config)") or {}
    axes = _typed(d.get("axes"), dict, f"{where}.axes", "a mapping of dotted.key: [values]") or {}
    profiles = _typed(d.get("profiles"), dict, f"{where}.profiles", "a mapping of paper, quick, smoke") or {}
    missing = [p for p in PROFILES if p not in profiles]
    if missing:
        raise ConfigError(f"{where}.profiles", sorted(profiles), "all of " + ", ".join(PROFILES))
    for p, prof in profiles.items():
        at = f"{where}.profiles.{p}"
        _typed(prof, dict, at, "a mapping of config, axes, rows, search, or empty")
        refuse_unknown(prof or {}, PROFILE_KEYS, at, "a profile key: one of " + ", ".join(PROFILE_KEYS))
        for key, kind in (("config", dict), ("axes", dict), ("rows", list), ("search", dict)):
            _typed((prof or {}).get(key), kind, f"{at}.{key}", f"a {'list' if kind is list else 'mapping'}")
        if (prof or {}).get("rows") == []:  # cells() reads an empty list as "every row"
            raise ConfigError(f"{at}.rows", [], "a non-empty list of row labels (or no rows: key, for every row)")
    return Sweep(name=name, paper=paper, path=path, artifacts=tuple(arts), base=base, rows=rows,
                 axes=axes, profiles=profiles, search=d.get("search"),
                 plugins=tuple(plugin_modules.origin(spec) for spec in loaded))


def report_function(artifact: Artifact):
    """The ``make_`` function an artifact's ``report`` names; ConfigError before any run when it does not exist."""
    import importlib

    module, _, name = shipped.current_report(artifact.report, artifact.sweep_file.partition("#")[0]
                                             or artifact.sweep).partition(":")
    key = f"{Path(artifact.sweep_file).name or artifact.sweep}.artifacts.{artifact.id}.report"
    try:
        fn = getattr(importlib.import_module(module), name, None)
    except ImportError as e:
        raise ConfigError(key, artifact.report, f"module:function of an importable module ({e})") from None
    if not callable(fn):
        raise ConfigError(key, artifact.report, f"module:function of a function {module} defines")
    import inspect

    try:  # the artifact's options are the builder's keyword arguments: a wrong one fails before any run
        inspect.signature(fn).bind(None, **artifact.options)
    except TypeError as e:
        params = list(inspect.signature(fn).parameters)[1:]
        raise ConfigError(key.replace(".report", ".options"), artifact.options,
                          f"keyword arguments of {artifact.report}: {', '.join(params) or 'none'} ({e})") from None
    return fn


def all_sweeps() -> dict[str, Sweep]:
    out, failed = {}, {}
    for path in sorted(sweeps_dir().glob("*.yaml")):
        try:
            loaded = load_sweeps(path)
        except ConfigError as e:  # raised below unless a sweep names this file as its published values
            failed[path.resolve()] = e
            continue
        for s in loaded:
            if s.name in out:
                raise ConfigError(f"{path.name}.name", s.name,
                                  f"a sweep name {out[s.name].path.name} does not also use")
            out[s.name] = s
    values = {plugin_modules.published_file(s.paper) for s in out.values()}
    for path, error in failed.items():
        if path not in values:
            raise error
    return dict(sorted(out.items()))  # by name, as when every sweep had a file of its own name


def all_artifacts() -> dict[str, Artifact]:
    return {a.id: a for s in all_sweeps().values() for a in s.artifacts}


def resolve(target: str) -> tuple[Sweep, list[Artifact]]:
    """An artifact id, a sweep name or a sweep file path -> (its sweep, the artifacts to render)."""
    file, _, name = target.partition("#") if re.search(r"\.ya?ml#", target) else (target, "", "")
    if file.endswith((".yaml", ".yml")) or os.sep in file:
        if not Path(file).is_file():
            raise ConfigError("sweep file", file, "an existing sweep file (no such file)")
        s = load_sweep(Path(file), name or None)
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
