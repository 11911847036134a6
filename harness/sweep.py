"""Run a sweep's cells as Ray Tune trials, each logging its own MLflow run; return a summary.

Ray runs in-process on this machine by default (``ray.init`` with the machine's CPUs), or joins a
cluster given ``address``. Every cell's options are checked, and the store's path or server, before
Ray starts; the checks that take seconds and find no bad option (each model run on the meta device,
the store opened) run while Ray starts, and one that fails shuts Ray down before any trial.

Failures, from small to large:
  * a trial that raises is recorded FAILED (with its reason) in MLflow and by Tune; the sweep goes on;
  * a trial whose worker dies is retried from its last checkpoint (one per epoch: weights,
    optimizer, schedule, progress, RNG; the data order derives from (seed, epoch)) up to
    ``max_failures`` times, continuing the same MLflow run;
  * a driver that dies is continued by ``resume=True`` (``Tuner.restore``): finished trials are not
    run again and resumed ones continue their runs;
  * re-running a sweep skips the cells whose config digest already has a FINISHED run, unless ``rerun``.
"""
from __future__ import annotations

import atexit
import gc
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import checks, tracking
from .catalog import Cell, Sweep
from .checks import SQLITE_TESTED_CONCURRENCY, _check_address, _check_models, _check_resources, _check_run_args  # noqa: F401
from .errors import ConfigError, writable_folder
from .trial import _cell_of, _trial  # noqa: F401  (the trainable; harness.search_run imports it from here)


def results_root() -> Path:
    """Where Tune keeps trial state and checkpoints (``--storage-path``; shared storage on a cluster)."""
    return Path(os.environ.get("HARNESS_RAY_RESULTS") or Path.home() / "ray_results")


@dataclass
class TrialSummary:
    name: str
    row: str
    seed: int
    status: str  # FINISHED | FAILED | KILLED (the sweep was interrupted while it ran), as its MLflow run
    epochs: int = 0
    metrics: dict = field(default_factory=dict)
    error: str = ""
    run_id: str = ""
    stopped_early: bool = False  # ended by an early-stopping scheduler (FINISHED, fewer epochs)
    trial_id: str = ""
    values: dict = field(default_factory=dict)  # a search trial's sampled values


@dataclass
class SweepSummary:
    sweep: str
    profile: str
    experiment: str
    tracking_uri: str
    trials: list
    wall_time_s: float
    skipped: list = field(default_factory=list)  # cells already recorded FINISHED (see ``rerun``)
    not_started: int = 0  # trials Tune never started (the sweep was interrupted); --resume runs them
    extra_metrics: tuple = ()  # a search's objectives, kept per trial beside the accuracies
    search: Optional[dict] = None  # a search's parent run, objectives and infeasible samples (run_search)

    @property
    def failed(self) -> list:
        return [t for t in self.trials if t.status == "FAILED"]

    @property
    def interrupted(self) -> bool:
        return self.not_started > 0 or any(t.status == "KILLED" for t in self.trials)


def _progress(total: int, describe=None):
    """A Tune callback printing one line per trial start, finish and failure, with a done counter;
    ``describe(trial)`` adds the trial's sampled values to its start line (searches)."""
    from ray.tune import Callback

    def name(trial) -> str:
        return trial.config["cell"]["name"] if "cell" in trial.config else str(trial)

    class Progress(Callback):
        def __init__(self):
            self.done = 0
            self.last: dict = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            print(f"  started   {name(trial)}" + (f"  {describe(trial)}" if describe else ""), flush=True)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def _end(self, trial, word: str, detail: str) -> None:
            self.done += 1
            print(f"  {word:<9} {name(trial):<24} {detail} [{self.done}/{total}]", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = self.last.get(trial.trial_id, {})
            word = "stopped" if r.get("epoch", 0) < r.get("planned_epochs", 0) else "finished"
            self._end(trial, word, f"epochs={r.get('epoch', 0)} val_acc={r.get('val_acc', float('nan')):.2f} "
                                   f"test_acc={r.get('test_acc', float('nan')):.2f} "
                                   f"train_time_s={r.get('train_time_s', float('nan')):.1f}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._end(trial, "FAILED", "(reason in its MLflow run and the summary)")

    return Progress()


def init_ray(address: Optional[str], log_to_driver: bool = True) -> None:
    """In-process Ray on this machine, or join ``address``. ``log_to_driver=False`` keeps the
    workers' own output (Tune's per-checkpoint lines, say) off the console: --verbose shows it."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs = dict(include_dashboard=False, configure_logging=False, log_to_driver=log_to_driver)
    if not log_to_driver:  # Tune's own error reports repeat what the summary and the MLflow runs say
        import logging

        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count(), **kwargs)
    # At exit the cyclic collector's last passes walk every object torch, Ray, Tune and MLflow made
    # (1.2 s of each `harness run`'s exit here); frozen first, they are skipped. Nothing waits on
    # them: MLflow commits each call, Tune closes its files, the process returns the memory.
    atexit.register(gc.freeze)


LAUNCH_FILE = "harness-launch.json"  # in each Tune experiment folder: the sweep, profile and store it writes to


def _latest_experiment(sweep: Sweep, profile: str, storage: Path, uri: str) -> tuple[Path, dict]:
    """The last launch of ``sweep`` at ``profile`` under ``storage`` that wrote to the store ``uri``;
    one bound to another store is never continued into this one (ConfigError naming both)."""
    found = sorted(storage.glob(f"{sweep.name}-{profile}-*"), key=lambda p: p.stat().st_mtime)
    launches = [(p, json.loads((p / LAUNCH_FILE).read_text())) for p in found if (p / LAUNCH_FILE).is_file()]
    mine = [(p, launch) for p, launch in launches if launch.get("tracking_uri") == uri]
    if mine:
        return mine[-1]
    if launches:
        raise ConfigError("--resume", f"{sweep.name} at profile {profile} into {uri}",
                          f"a launch that wrote to this store: the last one under {storage} ({launches[-1][0].name}) "
                          f"wrote to {launches[-1][1].get('tracking_uri')}; pass that --tracking-uri to continue it")
    raise ConfigError("--resume", f"{sweep.name} at profile {profile}",
                      f"a sweep started before under {storage} (none found; run it without --resume)")


def _storage(storage_path: Optional[str], *run_args) -> Path:
    """The launch's Tune storage, checked with the run's other arguments before anything starts."""
    _check_run_args(*run_args)
    storage = Path(storage_path) if storage_path else results_root()
    if "://" not in str(storage_path or ""):  # s3:// and the like: Tune checks those itself
        writable_folder("--storage-path", storage)
    return storage


def _preflight(*args, **kwargs) -> str:
    """harness.checks._preflight, joining a cluster through this module's ``init_ray`` (tests replace it)."""
    verbose = kwargs.get("verbose", False)
    return checks._preflight(*args, connect=lambda: init_ray(_address_of(args, kwargs), log_to_driver=verbose),
                             **kwargs)


def _address_of(args: tuple, kwargs: dict) -> Optional[str]:
    return args[3] if len(args) > 3 else kwargs.get("address")


def _start_ray_while(checks_running, address: Optional[str], verbose: bool) -> tuple:
    """``init_ray`` while ``checks_running`` (harness.checks.while_ray_starts) runs, which mostly
    waits on Ray's own processes; then (its result, whether this call started Ray). A failed check
    shuts down the Ray this call started and raises its ConfigError: no trial was queued."""
    import ray

    started = not ray.is_initialized()
    try:
        init_ray(address, log_to_driver=verbose)
    finally:
        error = checks_running.exception()  # wait for the checks, whatever init_ray did
    if error is not None:
        if started:
            ray.shutdown()
        raise error
    return checks_running.result(), started


def _context(sweep: Sweep, profile: str, uri: str, experiment_id: str, cpus_per_trial: float) -> dict:
    """What every trial of a launch shares: the store, its threads and the launch's tags."""
    sha = tracking.git_sha()
    tags = {"sweep": sweep.name, "paper": sweep.paper, "profile": profile,
            "artifact": ",".join(a.id for a in sweep.artifacts), "git_sha": sha,
            "driver": f"{platform.node()}:{os.getpid()}",
            # MLflow's own source tags fill the UI's Source column
            "mlflow.source.name": f"{sweep.path.parent.name}/{sweep.path.name}", "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": sha}
    # one tag per artifact, so the UI's search box finds one artifact's runs: tags."artifact.<id>" = 'true'
    tags.update({f"artifact.{a.id}": "true" for a in sweep.artifacts})
    return {"tracking_uri": uri, "experiment_id": experiment_id, "threads": max(1, int(cpus_per_trial)), "tags": tags}


def _tune_configs(name: str, storage: Path, max_failures: int, callbacks: list, verbose: bool):
    from ray import tune

    # CheckpointConfig(num_to_keep=...) makes Tune snapshot the experiment state whenever a trial
    # checkpoints: that is what lets --resume pick up exactly where a killed driver stopped, and its
    # cost is small (benchmarks/RESULTS.md), so Tune's repeated warning about it is silenced. Four
    # kept, not one: the snapshot can lag the newest checkpoint (seen here: two behind, with epochs
    # of 0.06 s), and a driver killed then must still find the checkpoint its snapshot names.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not verbose:  # Tune's newer console output prints its configuration box even at verbose=0
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    return tune.RunConfig(name=name, storage_path=str(storage), verbose=1 if verbose else 0,
                          failure_config=tune.FailureConfig(max_failures=max_failures),
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=4), callbacks=callbacks)


def _launch(sweep: Sweep, profile: str, storage: Path, uri: str, resume: bool, **extra) -> tuple[str, Optional[Path], dict]:
    """(the Tune experiment's name, the folder to restore or None, the launch record)."""
    if resume:
        folder, launch = _latest_experiment(sweep, profile, storage, uri)
        return folder.name, folder, launch
    name = f"{sweep.name}-{profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    launch = {"sweep": sweep.name, "profile": profile, "tracking_uri": uri, **extra}
    folder = storage / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LAUNCH_FILE).write_text(json.dumps(launch))
    return name, None, launch


def run_sweep(sweep: Sweep, profile: str, cells: list[Cell], *, address: Optional[str] = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, max_concurrent: Optional[int] = None,
              tracking_uri: Optional[str] = None, progress: bool = True, max_failures: int = 1,
              resume: bool = False, rerun: bool = False, storage_path: Optional[str] = None,
              verbose: bool = False, wait_for_resources: bool = False) -> SweepSummary:
    """Launch every cell as a trial (or resume the last launch) and wait for all of them."""
    storage = _storage(storage_path, cpus_per_trial, gpus_per_trial, max_concurrent, max_failures)
    if resume:  # refuse before anything changes, the other store included
        _latest_experiment(sweep, profile, storage, tracking.resolve_uri(tracking_uri))
    configs = [c.config for c in cells]
    uri = _preflight(configs, len(cells), tracking_uri, address, cpus_per_trial, max_concurrent, gpus_per_trial,
                     wait_for_resources, verbose=verbose)

    def open_experiment():  # once the models pass, while Ray starts: a failing model records nothing
        experiment_id = tracking.ensure_experiment(uri, sweep.name, {"paper": sweep.paper,
                                                                     "sweep_file": sweep.path.name})
        tracking.close_orphans(uri, experiment_id)
        done = tracking.recorded_digests(uri, experiment_id) if not resume and not rerun else set()
        return experiment_id, done, _context(sweep, profile, uri, experiment_id, cpus_per_trial)

    start = time.perf_counter()
    (experiment_id, done, ctx), started = _start_ray_while(checks.while_ray_starts(configs, uri, then=open_experiment),
                                                           address, verbose)
    skipped = [c for c in cells if c.digest in done]
    cells = [c for c in cells if c.digest not in done]
    summary = SweepSummary(sweep=sweep.name, profile=profile, experiment=sweep.name, tracking_uri=uri, trials=[],
                           wall_time_s=0.0, skipped=[c.name for c in skipped])
    if not cells and not resume:  # every cell recorded already: the store alone could tell, after Ray started
        if started:
            import ray

            ray.shutdown()
        return summary
    from ray import tune  # after Ray starts: 0.8 s of imports that no check needs

    trainable = tune.with_resources(_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    name, restore_from, launch = _launch(sweep, profile, storage, uri, resume, trials=len(cells))
    if restore_from is not None:
        # The restored param space is the original one (the cells it launched, the old driver tag).
        tuner = tune.Tuner.restore(str(restore_from), trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"cell": tune.grid_search(_payload(cells)), "ctx": ctx},
            # reuse_actors: a finished trial's worker process takes the next one, so a sweep of short
            # trials does not pay a process start and the torch/harness imports per trial (6 tiny
            # trials: 116 s -> 24 s); every trial still seeds, builds and attaches its own run.
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True,
                                        trial_name_creator=lambda t: t.config["cell"]["name"],
                                        trial_dirname_creator=lambda t: f"{t.trial_id}-{t.config['cell']['name']}"),
            run_config=_tune_configs(name, storage, max_failures, [_progress(len(cells))] if progress else [], verbose))
    _collect(tuner.fit(), summary, uri, experiment_id, early_stopping=False, expected=launch.get("trials"))
    summary.wall_time_s = time.perf_counter() - start
    return summary


def _collect(grid, summary: SweepSummary, uri: str, experiment_id: str, early_stopping: bool,
             expected: Optional[int] = None) -> None:
    """Each trial's outcome into ``summary``, and into its MLflow run where the driver alone knows it:
    a trial an early-stopping scheduler ended, a trial the interrupted sweep left unfinished.
    ``expected``: the trials the launch holds; those Tune never created (interrupted) are not started."""
    errored = {}
    # Tune's trial status (ResultGrid's own num_terminated reads the same list): ERROR failed;
    # TERMINATED is done when its last result says so (it returned, or a scheduler stopped it), but
    # Tune also marks TERMINATED the trials an interrupted fit (Ctrl-C) stops: those were cut short.
    statuses = [t.status for t in grid._experiment_analysis.trials]
    for result, tune_status in zip(grid, statuses):
        if not result.config or (tune_status == "PENDING" and not result.metrics):
            summary.not_started += 1  # interrupted (Ctrl-C) before this trial started: no run
            continue
        cell, sample_tags = _cell_of(result.config)
        m = result.metrics or {}
        run_id = str(m.get("mlflow_run_id", ""))
        error = _reason(result.error)
        stopped = False
        recorded = tracking.run_status(uri, run_id) if run_id else None
        if result.error:  # trial dirs are named "<trial_id>..." (trial_dirname_creator)
            errored[m.get("trial_id") or Path(result.path).name.split("-")[0]] = error
            status = "FAILED"
            if recorded not in (None, "RUNNING", "FAILED"):  # e.g. closed KILLED, then Tune could not restore it
                tracking.end_run(uri, run_id, "FAILED", error)
        elif tune_status == "TERMINATED" and (m.get("done") or recorded == "FINISHED"
                                              or m.get("epoch", 0) >= m.get("planned_epochs", math.inf)):
            status = "FINISHED"
            stopped = early_stopping and m.get("epoch", 0) < m.get("planned_epochs", 0)
            if recorded not in (None, "FINISHED"):
                # Tune ended it inside its last report (a scheduler's stop): the driver closes the run
                tracking.finish_stopped_early(uri, run_id, m, stopped)
        else:  # the sweep was stopped (Ctrl-C, SIGTERM) while this trial ran: --resume continues it
            status = "KILLED"
            if recorded == "RUNNING":
                tracking.end_run(uri, run_id, "KILLED", "the sweep was interrupted; --resume continues this trial")
        summary.trials.append(TrialSummary(
            name=cell["name"], row=cell["row"], seed=cell["config"]["train"]["seed"], status=status,
            epochs=int(m.get("epoch", 0)), stopped_early=stopped,
            metrics={k: m[k] for k in ("val_acc", "test_acc", "test_acc5", "train_time_s", *summary.extra_metrics)
                     if k in m},
            error=error, run_id=run_id, trial_id=str(m.get("trial_id", "")),
            values=json.loads(sample_tags["sample"]) if sample_tags else {}))
    if expected is not None:
        summary.not_started += max(0, expected - len(summary.trials) - summary.not_started)
    tracking.terminate_stale_runs(uri, experiment_id, errored)


def _reason(error) -> str:
    """A failed trial's own exception, one line: Ray wraps it (RayTaskError(...)) with colour codes."""
    if not error:
        return ""
    import re

    from ray.exceptions import RayTaskError

    cause = (error.cause or error) if isinstance(error, RayTaskError) else error  # Ray's wrapper, or the error itself
    text = f"{type(cause).__name__}: {cause}"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def _payload(cells: list[Cell]) -> list[dict]:
    return [{"row": c.row, "name": c.name, "config": c.config, "digest": c.digest} for c in cells]
