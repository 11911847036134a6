"""A search launch: Tune's searcher (and early-stopping scheduler) samples a sweep's ``search:`` space.

One MLflow parent run per launch (``search_parent``), each trial a child run (``mlflow.parentRunId``)
as MLflow's HPO convention has it; the parent ends with ``front.json``: the Pareto front over the
objectives and the best sample per objective. Trials, checks, Ray and the store are the grid
sweep's (harness.sweep); only the Tuner's set-up and the front are the search's own.
"""
from __future__ import annotations

import json
import math
import time
from typing import Optional

from . import checks, tracking
from .catalog import Sweep
from .sweep import (SweepSummary, _collect, _context, _latest_experiment, _launch, _preflight, _progress,
                    _start_ray_while, _storage, _trial, _tune_configs)


def run_search(sweep: Sweep, profile: str, plan, *, address: Optional[str] = None, cpus_per_trial: float = 1,
               gpus_per_trial: float = 0, max_concurrent: Optional[int] = None, tracking_uri: Optional[str] = None,
               progress: bool = True, max_failures: int = 1, resume: bool = False,
               storage_path: Optional[str] = None, verbose: bool = False,
               wait_for_resources: bool = False) -> SweepSummary:
    """Sample ``plan``'s space with Tune's searcher (and scheduler), one trial per sample and axis
    point, under one MLflow parent run per launch; or continue the last launch (``resume``)."""
    from . import search

    storage = _storage(storage_path, cpus_per_trial, gpus_per_trial, max_concurrent, max_failures)
    spec = plan.spec
    corner_configs = [plan.resolve({k: v}, 0).to_dict() for k, v in search.corners(spec)]
    max_epochs = max(c["train"]["epochs"] for c in corner_configs)
    scheduler = search.build_scheduler(spec, max_epochs)  # ConfigError before Ray starts
    if resume:  # refuse before anything changes, the other store included
        _latest_experiment(sweep, profile, storage, tracking.resolve_uri(tracking_uri))
    uri = _preflight(corner_configs, spec.num_samples * len(plan.points), tracking_uri, address, cpus_per_trial,
                     max_concurrent, gpus_per_trial, wait_for_resources, check_models=False, verbose=verbose)

    def open_experiment():  # while Ray starts (harness.sweep.run_sweep does the same)
        experiment_id = tracking.ensure_experiment(uri, sweep.name, {"paper": sweep.paper,
                                                                     "sweep_file": sweep.path.name})
        tracking.close_orphans(uri, experiment_id)
        return experiment_id, _context(sweep, profile, uri, experiment_id, cpus_per_trial)

    start = time.perf_counter()
    (experiment_id, ctx), _ = _start_ray_while(checks.while_ray_starts(corner_configs, uri, check_models=False,
                                                                       then=open_experiment), address, verbose)
    from ray import tune  # after Ray starts: imports that no check needs

    from . import searchers

    summary = SweepSummary(sweep=sweep.name, profile=profile, experiment=sweep.name, tracking_uri=uri, trials=[],
                           wall_time_s=0.0, extra_metrics=tuple(spec.objectives))
    if resume:
        name, restore_from, launch = _launch(sweep, profile, storage, uri, resume=True)
        parent = launch["parent_run_id"]
        tracking.reopen(uri, parent)
    else:
        name = f"{sweep.name}-{profile}-{time.strftime('%Y%m%d-%H%M%S')}"
        params = {"search.space": json.dumps(spec.raw.get("space"), default=str), "search.algorithm": spec.algorithm,
                  "search.seed": spec.seed, "search.num_samples": spec.num_samples,
                  "search.objectives": json.dumps(spec.objectives), "search.scheduler": json.dumps(spec.scheduler),
                  "search.constraints": json.dumps(spec.constraints, default=str),
                  "search.axes": json.dumps(plan.axes, default=str)}
        parent = tracking.start_parent(uri, experiment_id, f"search-{name}", {**ctx["tags"], "tune_experiment": name},
                                       params)
        name, restore_from, launch = _launch(sweep, profile, storage, uri, resume=False, parent_run_id=parent)
    ctx["parent_run_id"] = parent
    trainable = tune.with_resources(_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    callbacks = [_progress(spec.num_samples * len(plan.points), lambda t: _describe(plan, t))] if progress else []
    if scheduler is not None:
        callbacks.append(_stop_recorder(uri))
    try:
        if restore_from is not None:
            tuner = tune.Tuner.restore(str(restore_from), trainable, resume_unfinished=True, resume_errored=True)
        else:
            search_alg, num_samples = searchers.build_search_alg(plan, ctx, max_concurrent)
            param_space = {"plan": plan.payload(), "sample": search.domains(spec), "ctx": ctx}
            if spec.algorithm == "random" and len(plan.points) > 1:
                param_space["point"] = tune.grid_search(list(range(len(plan.points))))
            tuner = tune.Tuner(
                trainable, param_space=param_space,
                tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                                            reuse_actors=True, trial_dirname_creator=lambda t: t.trial_id),
                run_config=_tune_configs(name, storage, max_failures, callbacks, verbose))
        _collect(tuner.fit(), summary, uri, experiment_id, early_stopping=scheduler is not None)
    except BaseException:
        tracking.end_run(uri, parent, "KILLED", "the search's driver stopped with an error")
        raise
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
    summary.wall_time_s = time.perf_counter() - start
    return summary


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


def _describe(plan, trial) -> str:
    from .search import decode

    values = decode(plan.spec, trial.config["sample"])
    return " ".join(f"{k}={_short(v)}" for k, v in values.items())


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _stop_recorder(uri: str):
    """A Tune callback closing, as soon as Tune ends it, the run of a trial a scheduler stopped inside
    its report (the trial itself never gets control back), so the UI shows it FINISHED with
    ``stopped_early`` while the search goes on; ``_collect`` does the same for any it missed."""
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
