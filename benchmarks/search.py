"""Search sweeps: the driver's cost per suggestion and per result, and what ASHA saves.

Runs the ``cross_paper_pareto`` sweep's ``quick`` profile (Fashion-MNIST; random search with a fixed
seed, so both runs draw the same samples) twice in this one process through
``harness.search_run.run_search``, into one temporary SQLite store (one MLflow experiment; the two
searches are told apart by their parent runs): first as the sweep file says (ASHA, grace period 1,
reduction factor 2), then the same plan with ``search.scheduler`` replaced by ``{name: none}`` (a
copy of the sweep's search block through ``harness.search.parse_search``; the sweep file is not
changed). Default scale: ``--num-samples 8 --train-subset 2000`` (the profile's own 16 samples of
4,000 images would take ~20 min a run on 2 cores, by the sweep file's estimate); RESULTS.md says
which scale was measured.

Timers (``time.perf_counter``, in this process, where Tune's controller runs): for each run the
class methods ``FeasibleSearch.next_trial`` (Tune's BasicVariantGenerator proposing a sample plus the
harness's gate: resolving and validating the config, building the model on the meta device and
counting it, and for a refused sample writing its infeasible MLflow run) and the scheduler's
``on_trial_result`` (``AsyncHyperBandScheduler`` = ASHA; Tune's ``FIFOScheduler`` when the scheduler
is off) are replaced by timed wrappers for the duration of the run and restored after it.
Also timed, for completeness: the searcher's ``on_trial_result`` / ``on_trial_complete``.

Read back from the MLflow runs of each search (children of its parent run):
  * epochs trained: the sum over trained trials of the length of their ``epoch_time_s`` history;
  * best val_acc: the max over FINISHED, non-infeasible trials of their ``best_val_acc`` (each
    trial's best validation epoch; for a trial ASHA stopped, the best of the epochs it ran);
  * the samples drawn: the ``sample`` tag of every run (trained or infeasible) by sample id,
    asserted equal between the two runs;
  * trial time: the sum of the trained trials' MLflow run wall times. A trial ASHA stops never
    closes its own run (it ends inside ``tune.report``); the driver closes it (harness.search_run's
    stop-recording callback, or ``harness.outcomes.collect`` after ``Tuner.fit`` for any it missed), so for those
    the end is taken as the timestamp of the run's last logged epoch, which does not depend on when
    the driver got to it; the raw ``end_time - start_time`` sum is reported beside it;
  * each trial's val_acc per epoch (what ASHA compared at its rungs).

Figures: driver cost share = (next_trial + scheduler on_trial_result) / trial time, target <= 1 %
(the headline, ASHA run); epochs ratio = no-ASHA epochs / ASHA epochs, target >= 2, with the best
val_acc of the ASHA run within 1 point of the run without it. ``--quick`` runs the ``smoke``
profile (digits, 3 samples, 2 epochs): seconds a trial, it checks the script, not the figures.
Ends with one JSON line.

Three more modes (issue 25):
  * ``--mode schedulers [--seeds 0 1 2]``: no stopping, ASHA on val_acc and MO-ASHA (harness.moasha)
    on the same random-search plan per search seed (the same samples, asserted), each search's
    epochs trained and the hypervolume of its trials' (last val_acc, macs) above (0 %, the sweep's
    MAC limit) (``harness.pareto.hypervolume``); figures: epochs ratio none / MO-ASHA (target >= 2) and MO-ASHA's
    hypervolume as a share of no stopping's (target >= 0.95). The issue's scale is the quick
    profile with >= 32 samples and 3 seeds (hours on 2 cores); ``--quick`` is the smoke profile.
  * ``--mode infeasible [--num-samples 200] [--seeds ...]``: TPE and NSGA-II through Tune's
    OptunaSearch, without and with ``constraints_func`` (harness.searchers.Violations), sampling the
    space with nothing trained (``infeasible_rate`` says what each is told); figure: the infeasible rate.
  * ``--mode searchers [--num-samples N] [--seeds 0 1 2]``: ``algorithm: random``, ``tpe`` and ``nsga2``
    (each told both objectives; no early stopping, so only the searcher differs) on the same profile,
    once per search seed. Each search's parent run logs ``hypervolume`` and ``trial_seconds`` after every
    finished trial (harness.search_run); per seed the budget is the least compute any of the three
    spent (its final ``trial_seconds``), and each search's hypervolume at that budget is the last one it
    logged within it. Figures: mean and sample std over the seeds of that hypervolume per algorithm,
    and of the final hypervolume. TPE samples its first 10 trials at random and NSGA-II its first
    generation (50), so below those sizes the three are random searches with different streams.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, harness_source, in_folder, loadavg  # noqa: E402

SWEEP = "cross_paper_pareto"


class Timers:
    """perf_counter totals and call counts of wrapped class methods, restored by ``restore``."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.returned: dict[str, int] = {}  # calls that returned something other than None
        self._saved: list = []

    def wrap(self, cls, method: str, label: str) -> None:
        original = cls.__dict__[method]
        self.totals.setdefault(label, 0.0)
        self.calls.setdefault(label, 0)
        self.returned.setdefault(label, 0)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                out = original(*args, **kwargs)
            finally:
                self.totals[label] += time.perf_counter() - start
                self.calls[label] += 1
            if out is not None:
                self.returned[label] += 1
            return out

        self._saved.append((cls, method, original))
        setattr(cls, method, timed)

    def restore(self) -> None:
        for cls, method, original in reversed(self._saved):
            setattr(cls, method, original)
        self._saved.clear()

    def report(self) -> dict:
        return {label: {"total_s": round(self.totals[label], 4), "calls": self.calls[label],
                        "calls_returning_a_value": self.returned[label],
                        "mean_ms_per_call": round(1000 * self.totals[label] / max(self.calls[label], 1), 3)}
                for label in self.totals}


def no_scheduler_plan(plan):
    """The same plan (spec, base config, axes) with the search block's scheduler set to none."""
    from harness.catalog import SearchPlan
    from harness.search import parse_search

    raw = {**plan.spec.raw, "scheduler": {"name": "none"}}
    return SearchPlan(spec=parse_search(raw), base=plan.base, axes=plan.axes)


def with_search(plan, **changes):
    """The same plan with search-block keys replaced (the scheduler, the seed), parsed again."""
    from harness.catalog import SearchPlan
    from harness.search import parse_search

    return SearchPlan(spec=parse_search({**plan.spec.raw, **changes}), base=plan.base, axes=plan.axes)


def run_one(sweep, profile: str, plan, store: str, storage: Path, cpus_per_trial: float) -> dict:
    """One run_search with the driver-side timers in place; its wall time, timers and load."""
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.schedulers.async_hyperband import AsyncHyperBandScheduler

    from harness import search_run as sweep_module
    from harness.moasha import MOASHAScheduler
    from harness.searchers import FeasibleSearch

    timers = Timers()
    timers.wrap(FeasibleSearch, "next_trial", "searcher.next_trial")
    timers.wrap(FeasibleSearch, "on_trial_result", "searcher.on_trial_result")
    timers.wrap(FeasibleSearch, "on_trial_complete", "searcher.on_trial_complete")
    timers.wrap(AsyncHyperBandScheduler, "on_trial_result", "scheduler.on_trial_result")  # ASHA
    timers.wrap(FIFOScheduler, "on_trial_result", "scheduler.on_trial_result")  # Tune's default when none
    timers.wrap(MOASHAScheduler, "on_trial_result", "scheduler.on_trial_result")  # mo_asha
    load_before = loadavg()
    start = time.perf_counter()
    try:
        summary = sweep_module.run_search(sweep, profile, plan, cpus_per_trial=cpus_per_trial, tracking_uri=store,
                                          progress=False, storage_path=str(storage))
    finally:
        timers.restore()
    wall_s = time.perf_counter() - start
    return {"summary": summary, "wall_s": wall_s, "timers": timers.report(), "timer_totals": dict(timers.totals),
            "load": {"before": load_before, "after": loadavg()}}


def read_runs(store: str, experiment: str, parent_run_id: str) -> dict:
    """Epochs, best val_acc, samples and trial times of one search's child runs."""
    from harness import tracking

    client = tracking.client(store)
    exp = client.get_experiment_by_name(experiment)
    runs = tracking.children(store, exp.experiment_id, parent_run_id)
    samples, trials, infeasible = {}, [], []
    for r in runs:
        tags = r.data.tags
        samples[tags["row"]] = json.loads(tags["sample"])
        if tags.get("infeasible") == "true":
            infeasible.append({"sample": tags["row"], "reason": tags.get("infeasible_reason", "")})
            continue
        history = client.get_metric_history(r.info.run_id, "epoch_time_s")
        val = sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id, "val_acc"))
        stopped = tags.get("stopped_early") == "true"
        raw_s = (r.info.end_time - r.info.start_time) / 1000
        # a stopped trial's end_time is when the driver closed it, after Tuner.fit: use its last epoch
        end_ms = max(m.timestamp for m in history) if stopped and history else r.info.end_time
        trials.append({"name": r.info.run_name, "sample": tags["row"], "status": r.info.status,
                       "epochs": len(history), "stopped_early": stopped,
                       "best_val_acc": r.data.metrics.get("best_val_acc"), "val_acc_by_epoch": [v for _, v in val],
                       "val_acc": r.data.metrics.get("val_acc"), "macs": r.data.metrics.get("macs"),
                       "model": samples[tags["row"]].get("model", {}).get("name"),
                       "trial_s": round((end_ms - r.info.start_time) / 1000, 3), "mlflow_wall_s_raw": round(raw_s, 3)})
    finished = [t for t in trials if t["status"] == "FINISHED" and t["best_val_acc"] is not None]
    return {"samples": samples, "trials": sorted(trials, key=lambda t: t["name"]), "infeasible": infeasible,
            "epochs": sum(t["epochs"] for t in trials),
            "best_val_acc": max((t["best_val_acc"] for t in finished), default=float("nan")),
            "trial_s": sum(t["trial_s"] for t in trials),
            "mlflow_wall_s_raw": sum(t["mlflow_wall_s_raw"] for t in trials),
            "failed": [t["name"] for t in trials if t["status"] != "FINISHED"]}


def scheduler_comparison(sweep, profile: str, plan, seeds: list[int], cpus_per_trial: float) -> dict:
    """No stopping, ASHA on val_acc and MO-ASHA (the profile's grace period and reduction factor) on
    the same plan, once per search seed; per search the epochs trained and the hypervolume of its
    trials' (last val_acc, macs) over the reference (0 %, the sweep's MAC limit)."""
    import pandas as pd

    from harness import tracking
    from harness.pareto import hypervolume

    own = plan.spec.scheduler
    options = {k: v for k, v in own.items() if k != "name"}
    reference = (0.0, float(plan.spec.constraints["macs"]["max"]))
    out: dict = {"reference_val_acc_pct_macs": reference, "runs": []}
    with tempfile.TemporaryDirectory() as tmp, in_folder(tmp):
        tmp = Path(tmp)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        tracking.check_reachable(store)
        for seed in seeds:
            for name in ("none", "asha", "mo_asha"):
                variant = with_search(plan, seed=seed, scheduler={"name": name, **({} if name == "none" else options)})
                run = run_one(sweep, profile, variant, store, tmp / f"ray_{name}_{seed}", cpus_per_trial)
                rec = read_runs(store, run["summary"].experiment, run["summary"].search["parent_run_id"])
                points = pd.DataFrame([{"val_acc": t["val_acc"], "macs": t["macs"]} for t in rec["trials"]
                                       if t["status"] == "FINISHED" and t["val_acc"] is not None
                                       and t["macs"] is not None], columns=["val_acc", "macs"])
                volume = hypervolume(points, {"val_acc": "max", "macs": "min"},
                                     {"val_acc": reference[0], "macs": reference[1]})
                out["runs"].append({"seed": seed, "scheduler": name, "epochs": rec["epochs"],
                                    "hypervolume": volume, "trained": len(rec["trials"]),
                                    "stopped_early": sum(t["stopped_early"] for t in rec["trials"]),
                                    "infeasible": len(rec["infeasible"]), "trial_s": round(rec["trial_s"], 2),
                                    "search_wall_s": round(run["wall_s"], 2), "failed": rec["failed"],
                                    "samples": rec["samples"],
                                    "trials": [{k: t[k] for k in ("sample", "model", "epochs", "stopped_early", "val_acc",
                                                                  "macs", "val_acc_by_epoch")} for t in rec["trials"]]})
    by = {}
    for r in out["runs"]:
        by.setdefault(r["scheduler"], []).append(r)
    for name, runs in by.items():
        base = {r["seed"]: r for r in by["none"]}
        out[name] = {"epochs": [r["epochs"] for r in runs], "hypervolume": [r["hypervolume"] for r in runs],
                     "epochs_ratio_none_over_this": [round(base[r["seed"]]["epochs"] / r["epochs"], 3) for r in runs],
                     "hypervolume_share_of_none": [round(r["hypervolume"] / base[r["seed"]]["hypervolume"], 4)
                                                   if base[r["seed"]]["hypervolume"] else None for r in runs]}
    return out


def parent_curve(store: str, parent_run_id: str) -> list[tuple[float, float]]:
    """(trial_seconds, hypervolume) after each finished trial, as the search's parent run logged them."""
    from harness import tracking

    client = tracking.client(store)
    seconds = {m.step: m.value for m in client.get_metric_history(parent_run_id, "trial_seconds")}
    volume = {m.step: m.value for m in client.get_metric_history(parent_run_id, "hypervolume")}
    return [(seconds[step], volume[step]) for step in sorted(seconds) if step in volume]


def at_budget(curve: list, budget: float) -> float:
    """The hypervolume a search had logged by the time its trial_seconds reached ``budget``: the largest
    within it, as a hypervolume never falls (0 before its first finished trial)."""
    return max((v for s, v in curve if s <= budget + 1e-9), default=0.0)


def searcher_comparison(sweep, profile: str, plan, seeds: list[int], cpus_per_trial: float) -> dict:
    """random, tpe and nsga2 (no stopping) per search seed; each search's parent-run curve and its
    hypervolume at the seed's common budget (the least final trial_seconds of the three)."""
    import statistics

    from harness import tracking

    algorithms = ("random", "tpe", "nsga2")
    runs = []
    with tempfile.TemporaryDirectory() as tmp, in_folder(tmp):
        tmp = Path(tmp)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        tracking.check_reachable(store)
        for seed in seeds:
            for algorithm in algorithms:
                variant = with_search(plan, seed=seed, algorithm=algorithm, scheduler={"name": "none"})
                run = run_one(sweep, profile, variant, store, tmp / f"ray_{algorithm}_{seed}", cpus_per_trial)
                parent = run["summary"].search["parent_run_id"]
                rec = read_runs(store, run["summary"].experiment, parent)
                curve = parent_curve(store, parent)
                runs.append({"seed": seed, "algorithm": algorithm, "curve": [[round(s, 2), v] for s, v in curve],
                             "final_trial_s": curve[-1][0] if curve else 0.0,
                             "final_hypervolume": curve[-1][1] if curve else 0.0,
                             "trained": len(rec["trials"]), "infeasible": len(rec["infeasible"]),
                             "failed": rec["failed"], "search_wall_s": round(run["wall_s"], 2)})
    for seed in seeds:
        mine = [r for r in runs if r["seed"] == seed]
        budget = min(r["final_trial_s"] for r in mine)
        for r in mine:
            r["budget_trial_s"] = round(budget, 2)
            r["hypervolume_at_budget"] = at_budget([tuple(p) for p in r["curve"]], budget)

    def spread(values: list) -> dict:
        return {"values": values, "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None}

    out = {"runs": runs}
    for algorithm in algorithms:
        mine = [r for r in runs if r["algorithm"] == algorithm]
        out[algorithm] = {"hypervolume_at_budget": spread([r["hypervolume_at_budget"] for r in mine]),
                          "final_hypervolume": spread([r["final_hypervolume"] for r in mine]),
                          "final_trial_s": spread([r["final_trial_s"] for r in mine])}
    return out


def infeasible_rate(plan, n: int, seed: int, sampler_name: str, constrained: bool) -> dict:
    """``n`` samples of ``plan``'s space from Optuna's TPE or NSGA-II through Tune's OptunaSearch, none
    trained: each is checked by the gate's ``assess`` (meta-device build and counts); a feasible one
    is told a val_acc drawn uniformly from [0, 100) by a generator seeded with ``seed`` (noise: the
    only thing to learn is where samples are infeasible) and, for NSGA-II, its real counted macs; an
    infeasible one is told as harness.searchers.FeasibleSearch tells it (failed, or completed with its
    placeholder when the sampler has ``constraints_func``). TPE: one objective (val_acc), as the
    harness gives TPE; NSGA-II: the sweep's objectives."""
    import numpy as np
    from ray.tune.search.optuna import OptunaSearch

    from harness import search, searchers

    spec = plan.spec
    objectives = {"val_acc": "max"} if sampler_name == "tpe" else dict(spec.objectives)
    cls = searchers.TPESampler if sampler_name == "tpe" else searchers.NSGAIISampler
    metric, mode = list(objectives), list(objectives.values())
    if len(metric) == 1:
        metric, mode = metric[0], mode[0]
    optuna_search = OptunaSearch(metric=metric, mode=mode, sampler=searchers.sampler(
        cls, seed, searchers.Violations(plan) if constrained else None))
    optuna_search.set_search_properties(None, None, {"sample": search.domains(spec)})
    noise = np.random.default_rng(seed)
    refused, kinds = [], {"does_not_build": 0, "over_limit": 0}
    start = time.perf_counter()
    for i in range(n):
        config = optuna_search.suggest(f"t{i}")
        verdict = searchers.assess(plan, search.decode(spec, config["sample"]))
        if verdict["reason"] is None:
            told = {"val_acc": float(noise.uniform(0, 100)), **{m: float(verdict["counts"][m]) for m in objectives
                                                               if m in verdict["counts"]}}
            optuna_search.on_trial_complete(f"t{i}", result=told)
            continue
        refused.append(i)
        kinds["does_not_build" if verdict["violations"][0] > 0 else "over_limit"] += 1
        if constrained:
            optuna_search.on_trial_complete(f"t{i}", result=searchers.placeholder(objectives, verdict["counts"]))
        else:
            optuna_search.on_trial_complete(f"t{i}", error=True)
    half = n // 2
    return {"sampler": sampler_name, "constraints_func": constrained, "seed": seed, "samples": n,
            "infeasible": len(refused), "infeasible_rate": round(len(refused) / n, 4),
            "infeasible_rate_second_half": round(sum(i >= half for i in refused) / (n - half), 4),
            "by_reason": kinds, "wall_s": round(time.perf_counter() - start, 2)}


def driver_cost(run: dict, recorded: dict) -> dict:
    totals = run["timer_totals"]
    suggest_s, schedule_s = totals["searcher.next_trial"], totals["scheduler.on_trial_result"]
    proposed = len(recorded["samples"])  # samples the gate saw: trained and infeasible
    results = run["timers"]["scheduler.on_trial_result"]["calls"]
    return {"next_trial_s": round(suggest_s, 4), "scheduler_on_trial_result_s": round(schedule_s, 4),
            "samples_proposed": proposed, "next_trial_ms_per_sample": round(1000 * suggest_s / max(proposed, 1), 3),
            "results": results, "scheduler_ms_per_result": round(1000 * schedule_s / max(results, 1), 4),
            "share_of_trial_time_pct": round(100 * (suggest_s + schedule_s) / recorded["trial_s"], 4),
            "share_of_search_wall_pct": round(100 * (suggest_s + schedule_s) / run["wall_s"], 4),
            "timers": run["timers"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-samples", type=int, default=None, help="samples per search (default 8; --quick: 3)")
    ap.add_argument("--train-subset", type=int, default=None,
                    help="training images (default 2000 of the quick profile's 4000; --quick: the smoke profile's)")
    ap.add_argument("--cpus-per-trial", type=float, default=1)
    ap.add_argument("--quick", action="store_true", help="the smoke profile: checks the script, not the figures")
    ap.add_argument("--mode", choices=("driver", "schedulers", "infeasible", "searchers"), default="driver",
                    help="driver: ASHA vs none, the driver's cost (the default); schedulers: none vs ASHA vs MO-ASHA, "
                         "epochs and hypervolume per search seed; infeasible: TPE / NSGA-II infeasible rate without "
                         "and with constraints_func, no training; searchers: random vs TPE vs NSGA-II hypervolume "
                         "at equal trial-seconds")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="search seeds (schedulers, infeasible, searchers)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="schedulers, searchers: a config key of the profile replaced, as harness run --set does "
                         "(train.epochs=8, say; RESULTS.md names each one used)")
    ap.add_argument("--macs-max", type=float, default=None,
                    help="infeasible: the MAC limit instead of the profile's (a tighter one makes more of the space infeasible)")
    args = ap.parse_args(argv)
    if args.mode == "infeasible":
        return main_infeasible(args)
    if args.mode in ("schedulers", "searchers"):
        return main_schedulers(args)
    profile = "smoke" if args.quick else "quick"
    if not args.quick:
        args.num_samples = args.num_samples or 8
        args.train_subset = args.train_subset or 2000
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    source = harness_source()

    import ray

    from harness import catalog, tracking

    sweep = catalog.resolve(SWEEP)[0]
    sets = [f"data.train_subset={args.train_subset}"] if args.train_subset else []
    asha_plan = sweep.search_plan(profile, num_samples=args.num_samples, sets=sets)
    none_plan = no_scheduler_plan(asha_plan)
    started_here = not ray.is_initialized()  # a caller's Ray (a test session's) is left running
    with tempfile.TemporaryDirectory() as tmp, in_folder(tmp):  # MLflow writes run artifacts to ./mlruns
        tmp = Path(tmp)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        tracking.check_reachable(store)  # the store's schema, created once: untimed
        runs, recorded = {}, {}
        for label, plan in (("asha", asha_plan), ("no_scheduler", none_plan)):
            runs[label] = run_one(sweep, profile, plan, store, tmp / f"ray_{label}", args.cpus_per_trial)
            summary = runs[label]["summary"]
            recorded[label] = read_runs(store, summary.experiment, summary.search["parent_run_id"])
        if started_here:
            ray.shutdown()

    asha, none = recorded["asha"], recorded["no_scheduler"]
    same_samples = asha["samples"] == none["samples"]
    differ = {k: [asha["samples"].get(k), none["samples"].get(k)]
              for k in sorted(set(asha["samples"]) | set(none["samples"]))
              if asha["samples"].get(k) != none["samples"].get(k)}
    assert same_samples, "the two searches drew different samples: " + json.dumps(differ, default=str)
    epochs_ratio = none["epochs"] / asha["epochs"] if asha["epochs"] else float("nan")
    val_diff = none["best_val_acc"] - asha["best_val_acc"]
    cost = {label: driver_cost(runs[label], recorded[label]) for label in runs}
    share = cost["asha"]["share_of_trial_time_pct"]
    plan_cfg = asha_plan.base
    return emit(
        "search_driver_cost_share_pct", share, 1.0, "lower",
        figures={
            "driver_cost_share_pct": {"value": share, "target": 1.0, "better": "lower", "met": share <= 1.0,
                                      "what": "(FeasibleSearch.next_trial + ASHA on_trial_result) / trial time, "
                                              "ASHA run"},
            "epochs_ratio_no_asha_over_asha": {"value": round(epochs_ratio, 3), "target": 2.0, "better": "higher",
                                               "met": epochs_ratio >= 2.0},
            "best_val_acc_no_asha_minus_asha_points": {"value": round(val_diff, 3), "target": 1.0, "better": "lower",
                                                       "met": abs(val_diff) <= 1.0}},
        same_samples=same_samples, samples_drawn=len(asha["samples"]),
        infeasible={label: recorded[label]["infeasible"] for label in recorded},
        epochs={label: recorded[label]["epochs"] for label in recorded},
        best_val_acc={label: recorded[label]["best_val_acc"] for label in recorded},
        trial_s={label: round(recorded[label]["trial_s"], 2) for label in recorded},
        trial_s_mlflow_end_time_raw={label: round(recorded[label]["mlflow_wall_s_raw"], 2) for label in recorded},
        search_wall_s={label: round(runs[label]["wall_s"], 2) for label in runs},
        driver_cost=cost,
        failed={label: recorded[label]["failed"] for label in recorded},
        trials={label: recorded[label]["trials"] for label in recorded},
        setup={"sweep": SWEEP, "profile": profile, "num_samples": asha_plan.spec.num_samples,
               "algorithm": asha_plan.spec.algorithm, "seed": asha_plan.spec.seed,
               "scheduler": asha_plan.spec.scheduler, "constraints": asha_plan.spec.constraints,
               "dataset": plan_cfg["data"]["dataset"], "train_subset": plan_cfg["data"].get("train_subset"),
               "val_size": plan_cfg["data"].get("val_size"), "test_subset": plan_cfg["data"].get("test_subset"),
               "epochs": plan_cfg["train"]["epochs"], "batch_size": plan_cfg["train"]["batch_size"],
               "cpus_per_trial": args.cpus_per_trial, "cpus": os.cpu_count()},
        harness_source=source, load={label: runs[label]["load"] for label in runs})


def main_infeasible(args) -> dict:
    """The infeasible rate of TPE and NSGA-II on the cross-paper space, without and with constraints_func
    (--num-samples per search, default 200; --quick: the smoke profile, 20)."""
    from harness import catalog

    profile = "smoke" if args.quick else "quick"
    n = args.num_samples or (20 if args.quick else 200)
    plan = catalog.resolve(SWEEP)[0].search_plan(profile)
    if args.macs_max:  # a tighter limit than the profile's, so that a sizeable share of the space is infeasible
        plan = with_search(plan, constraints={**plan.spec.constraints, "macs": {"max": args.macs_max}})
    runs = [infeasible_rate(plan, n, seed, sampler_name, constrained)
            for seed in args.seeds for sampler_name in ("tpe", "nsga2") for constrained in (False, True)]
    rate = {f"{name}_{'with' if c else 'without'}_constraints_func":
            [r["infeasible_rate"] for r in runs if r["sampler"] == name and r["constraints_func"] == c]
            for name in ("tpe", "nsga2") for c in (False, True)}
    headline = sum(rate["nsga2_with_constraints_func"]) / len(rate["nsga2_with_constraints_func"])
    return emit("nsga2_infeasible_rate_with_constraints_func", headline,
                sum(rate["nsga2_without_constraints_func"]) / len(rate["nsga2_without_constraints_func"]), "lower",
                infeasible_rate=rate, runs=runs,
                setup={"sweep": SWEEP, "profile": profile, "samples": n, "seeds": args.seeds,
                       "constraints": plan.spec.constraints, "dataset": plan.base["data"]["dataset"]},
                harness_source=harness_source())


def main_schedulers(args) -> dict:
    """No stopping vs ASHA vs MO-ASHA, or (--mode searchers) random vs TPE vs NSGA-II, on the cross-paper
    space's --quick (smoke) or quick profile."""
    import ray

    from harness import catalog

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    profile = "smoke" if args.quick else "quick"
    sweep = catalog.resolve(SWEEP)[0]
    sets = ([f"data.train_subset={args.train_subset}"] if args.train_subset else []) + args.sets
    plan = sweep.search_plan(profile, num_samples=args.num_samples, sets=sets)
    setup = {"sets": sets, "sweep": SWEEP, "profile": profile, "num_samples": plan.spec.num_samples, "seeds": args.seeds,
             "algorithm": plan.spec.algorithm, "scheduler_options": plan.spec.scheduler,
             "constraints": plan.spec.constraints, "dataset": plan.base["data"]["dataset"],
             "train_subset": plan.base["data"].get("train_subset"), "epochs": plan.base["train"]["epochs"],
             "cpus_per_trial": args.cpus_per_trial, "cpus": os.cpu_count()}
    started_here = not ray.is_initialized()
    if args.mode == "searchers":
        result = searcher_comparison(sweep, profile, plan, args.seeds, args.cpus_per_trial)
        if started_here:
            ray.shutdown()
        setup.update(algorithm="random | tpe | nsga2", scheduler_options={"name": "none"},
                     reference_point=plan.spec.reference_point()[0])
        means = {a: result[a]["hypervolume_at_budget"]["mean"] for a in ("random", "tpe", "nsga2")}
        return emit("nsga2_hypervolume_at_equal_trial_s_over_random", means["nsga2"] / means["random"]
                    if means["random"] else float("nan"), None, "higher",
                    searchers={a: result[a] for a in ("random", "tpe", "nsga2")}, runs=result["runs"], setup=setup,
                    harness_source=harness_source())
    result = scheduler_comparison(sweep, profile, plan, args.seeds, args.cpus_per_trial)
    if started_here:
        ray.shutdown()
    for name in ("asha", "mo_asha"):  # the same samples with and without stopping (random search, same seed)
        for r in (x for x in result["runs"] if x["scheduler"] == name):
            same = next(x for x in result["runs"] if x["scheduler"] == "none" and x["seed"] == r["seed"])
            assert r["samples"] == same["samples"], f"{name} seed {r['seed']} drew other samples than no stopping"
    mo = result["mo_asha"]
    return emit("mo_asha_epochs_ratio_none_over_mo_asha", min(mo["epochs_ratio_none_over_this"]), 2.0, "higher",
                figures={"mo_asha_hypervolume_share_of_none": {"value": min(s for s in mo["hypervolume_share_of_none"]
                                                                            if s is not None), "target": 0.95,
                                                                "better": "higher"}},
                schedulers={k: result[k] for k in ("none", "asha", "mo_asha")},
                runs=[{k: v for k, v in r.items() if k != "samples"} for r in result["runs"]],
                reference_val_acc_pct_macs=result["reference_val_acc_pct_macs"], setup=setup,
                harness_source=harness_source())


if __name__ == "__main__":
    main()
