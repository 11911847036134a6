"""A search launch: Tune's searcher (and early-stopping scheduler) samples a sweep's ``search:`` space.

One MLflow parent run per launch (``search_parent``), each trial a child run (``mlflow.parentRunId``)
as MLflow's HPO convention has it; the parent ends with ``front.json``: the Pareto front over the
objectives and the best sample per objective. Trials, checks, Ray and the store are every launch's
(harness.launcher); ``SearchLaunch`` holds what is the search's own: the searcher behind its
feasibility gate, the scheduler, the parent run and the front.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

from . import interrupt, tracking
from .catalog import Sweep
from .launch import open_launch
from .launcher import LaunchOptions, LaunchPlan, launch, with_parent
from .outcomes import SweepSummary
from .trial import TrialContext


class SearchLaunch(LaunchPlan):
    """``plan``'s space sampled by Tune's searcher (and scheduler), one trial per sample and axis point,
    under one MLflow parent run per launch. Models are built as samples are drawn (the gate), not before."""

    check_models = False

    def __init__(self, sweep: Sweep, profile: str, plan):
        from . import search

        self.sweep, self.profile, self.search_plan = sweep, profile, plan
        self.spec = plan.spec
        self.configs = [plan.resolve({k: v}, 0).to_dict() for k, v in search.corners(self.spec)]
        self.trials = self.spec.num_samples * len(plan.points)
        self.scheduler = None
        self.parent: Optional[str] = None

    def prepare(self, options: LaunchOptions) -> None:
        from . import stopping

        max_epochs = max(c["train"]["epochs"] for c in self.configs)
        self.scheduler = stopping.build_scheduler(self.spec, max_epochs)  # ConfigError before Ray starts
        self.early_stopping = self.scheduler is not None

    def summary(self, uri: str) -> SweepSummary:
        summary = super().summary(uri)
        summary.extra_metrics = tuple(self.spec.objectives)
        return summary

    def open(self, storage: Path, uri: str, experiment_id: str, ctx: TrialContext,
             options: LaunchOptions) -> tuple[str, Optional[Path], dict, TrialContext]:
        if options.resume:
            name, restore_from, record = open_launch(self.sweep, self.profile, storage, uri, resume=True,
                                                     settings=options.settings)
            self.parent = record["parent_run_id"]
            tracking.reopen(uri, self.parent)
            return name, restore_from, record, with_parent(ctx, self.parent)
        spec, name = self.spec, f"{self.sweep.name}-{self.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
        params = {"search.space": json.dumps(spec.raw.get("space"), default=str), "search.algorithm": spec.algorithm,
                  "search.seed": spec.seed, "search.num_samples": spec.num_samples,
                  "search.objectives": json.dumps(spec.objectives), "search.scheduler": json.dumps(spec.scheduler),
                  "search.constraints": json.dumps(spec.constraints, default=str),
                  "search.axes": json.dumps(self.search_plan.axes, default=str),
                  "search.reference_point": json.dumps(spec.reference_point()[0]),
                  "search.reference_source": json.dumps(spec.reference_point()[1])}
        self.parent = tracking.start_parent(uri, experiment_id, f"search-{name}", {**ctx.tags, "tune_experiment": name},
                                            params)
        name, restore_from, record = open_launch(self.sweep, self.profile, storage, uri, resume=False,
                                                 settings=options.settings, parent_run_id=self.parent)
        return name, restore_from, record, with_parent(ctx, self.parent)

    def describe(self, trial) -> str:
        from .search import decode

        values = decode(self.spec, trial.config["sample"])
        return " ".join(f"{k}={_short(v)}" for k, v in values.items())

    def callbacks(self, uri: str) -> list:
        return ([_stop_recorder(uri)] if self.scheduler is not None else []) + [
            _progress_recorder(uri, self.parent, self.spec)]

    def tuner(self, trainable, ctx: TrialContext, run_config, options: LaunchOptions):
        from ray import tune

        from . import search, searchers

        plan = self.search_plan
        search_alg, num_samples = searchers.build_search_alg(plan, ctx, options.max_concurrent)
        param_space = {"sample": search.domains(self.spec), "ctx": ctx.payload()}
        if self.spec.algorithm == "random" and len(plan.points) > 1:
            param_space["point"] = tune.grid_search(list(range(len(plan.points))))
        return tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=self.scheduler, num_samples=num_samples,
                                        reuse_actors=True, trial_dirname_creator=lambda t: t.trial_id),
            run_config=run_config)

    def abandon(self, uri: str, error: BaseException) -> None:
        if self.parent is not None and interrupt.store_problem(uri) is None:
            why = f"stopped by {error.reason} before its trials ran" if isinstance(error, interrupt.Interrupted) else \
                "the search's driver stopped with an error"
            tracking.end_run(uri, self.parent, "KILLED", why)

    def finish(self, summary: SweepSummary, uri: str, experiment_id: str) -> None:
        try:
            if summary.store_error.startswith("could not be reached"):
                raise OSError(summary.store_error)
            _close_search(summary, uri, experiment_id, self.parent, self.spec)
        except Exception as e:  # noqa: BLE001  (the front and the parent's close need the store; --resume writes them)
            summary.store_error = summary.store_error or f"could not be written ({type(e).__name__}: {e})"


def run_search(sweep: Sweep, profile: str, plan, **options) -> SweepSummary:
    """Sample ``plan``'s space with Tune's searcher (and scheduler), one trial per sample and axis
    point, under one MLflow parent run per launch; or continue the last launch (``resume``).
    ``options``: harness.launcher.LaunchOptions."""
    return launch(SearchLaunch(sweep, profile, plan), LaunchOptions(**options))


def _close_search(summary: SweepSummary, uri: str, experiment_id: str, parent: str, spec) -> None:
    """The search's runs that belong to no trial marked, its front computed, its parent run closed."""
    runs = tracking.children(uri, experiment_id, parent)
    trial_ids = {t.trial_id for t in summary.trials}
    for r in runs:
        if r.data.tags.get("infeasible") != "true" and r.data.tags.get("trial_id") not in trial_ids \
                and r.data.tags.get("lost_on_resume") != "true":
            # a trial Tune had started when its driver died but not yet saved in its state: the
            # restored searcher proposed again in its place, so this run belongs to no trial
            tracking.mark_lost(uri, r.info.run_id)
    infeasible = [{"name": r.info.run_name, "reason": r.data.tags.get("infeasible_reason", ""),
                   "values": {k: v for k, v in r.data.params.items()}, "counts": dict(r.data.metrics)}
                  for r in runs if r.data.tags.get("infeasible") == "true"]
    front, best = _front(runs, spec.objectives)
    summary.search = {"parent_run_id": parent, "objectives": dict(spec.objectives), "infeasible": infeasible,
                      "algorithm": spec.algorithm, "scheduler": spec.scheduler_name, "num_samples": spec.num_samples,
                      "front": front, "best": best}
    tracking.end_run(uri, parent, "KILLED" if summary.interrupted else "FINISHED",
                     "interrupted; --resume continues the search" if summary.interrupted else None,
                     artifacts={"front.json": json.dumps({"objectives": spec.objectives, "front": front, "best": best,
                                                          "infeasible": infeasible}, indent=1, default=str)})


def _front(runs: list, objectives: dict) -> tuple[list, dict]:
    """The non-dominated samples of a search's finished trials (objectives as the last epoch left
    them, averaged over a sample's axis points), and the best sample for each objective alone."""
    import pandas as pd

    from .pareto import pareto_front

    rows = [{"sample": r.data.tags.get("row"), "values": r.data.tags.get("sample", "{}"),
             "stopped_early": r.data.tags.get("stopped_early") == "true",
             **{o: r.data.metrics.get(o, math.nan) for o in objectives}}
            for r in runs if r.info.status == "FINISHED" and "sample" in r.data.tags
            and r.data.tags.get("infeasible") != "true"]
    if not rows:
        return [], {}
    frame = pd.DataFrame(rows)
    means = frame.groupby("sample", sort=True).agg(
        {**{o: "mean" for o in objectives}, "values": "first", "stopped_early": "sum"})
    means["trials"] = frame.groupby("sample").size()
    means = means.reset_index()
    def records(df) -> list[dict]:
        return [{**{k: v for k, v in r.items() if k != "values"}, "values": json.loads(r["values"])}
                for r in df.to_dict("records")]

    front = pareto_front(means, objectives).sort_values(list(objectives)[0],
                                                        ascending=list(objectives.values())[0] == "min")
    best = {}
    for o, mode in objectives.items():
        valid = means.dropna(subset=[o])
        if not valid.empty:
            best[o] = records(valid.loc[[valid[o].idxmax() if mode == "max" else valid[o].idxmin()]])[0]
    return records(front), best


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _stop_recorder(uri: str):
    """A Tune callback closing, as soon as Tune ends it, the run of a trial a scheduler stopped inside
    its report (the trial itself never gets control back), so the UI shows it FINISHED with
    ``stopped_early`` while the search goes on; ``harness.outcomes.collect`` does the same for any it missed."""
    from ray.tune import Callback

    class StopRecorder(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            run_id = last.get("mlflow_run_id")
            # done: the scheduler's STOP (an interrupted sweep's trials end without it)
            if run_id and last.get("done") and last.get("epoch", 0) < last.get("planned_epochs", 0) \
                    and tracking.run_status(uri, run_id) == "RUNNING":
                tracking.finish_stopped_early(uri, run_id, last, True)

    return StopRecorder()


def _progress_recorder(uri: str, parent: str, spec):
    """A Tune callback logging to the search's parent run, after each finished trial (step = trials
    finished so far): ``trial_seconds``, the trials' wall seconds summed (Tune's ``time_total_s``,
    errored trials' included), and ``hypervolume``, that of every finished trial's objectives (as its
    last epoch left them) against ``spec.reference_point()``; none while the reference is incomplete.
    Searches of one space compare at equal compute on these two axes (harness_analysis.search_report)."""
    from ray.tune import Callback

    from .pareto import hypervolume

    reference = spec.reference_point()[0]
    objectives = dict(spec.objectives)

    class ProgressRecorder(Callback):
        def __init__(self):
            self.points: list[dict] = []
            self.seconds = 0.0

        # Tune saves a callback's state with its experiment state and restores it on --resume, so a
        # resumed search's curve goes on from the trials already counted instead of restarting at step 1
        def get_state(self) -> dict:
            return {"points": self.points, "seconds": self.seconds}

        def set_state(self, state: dict) -> None:
            self.points, self.seconds = list(state["points"]), float(state["seconds"])

        def on_trial_error(self, iteration, trials, trial, **info):
            self.seconds += float((trial.last_result or {}).get("time_total_s", 0.0))

        def on_trial_complete(self, iteration, trials, trial, **info):
            import pandas as pd

            last = trial.last_result or {}
            self.seconds += float(last.get("time_total_s", 0.0))
            self.points.append({o: last.get(o, math.nan) for o in objectives})
            metrics = {"trial_seconds": self.seconds}
            if all(v is not None for v in reference.values()):
                metrics["hypervolume"] = hypervolume(pd.DataFrame(self.points), objectives, reference)
            tracking.log_metrics(uri, parent, metrics, step=len(self.points))

    return ProgressRecorder()
