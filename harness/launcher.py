"""One launch of a sweep's trials, grid or search, written once: ``launch(plan, options)`` -> SweepSummary.

Every launch runs the same sequence: the run arguments and Tune's storage checked; ``--resume``
refused when the launch it names was started otherwise or wrote to another store; the configs
checked before Ray starts (harness.checks.preflight); Ray started while the slow checks run and the
store's experiment is opened (orphaned runs closed); the Tuner built, or restored from the last
launch; fitted with the store watched and the driver's signals turned into Tune's graceful stop
(harness.interrupt); every trial's outcome collected from the store (harness.outcomes.collect).

A ``LaunchPlan`` says what differs between kinds: the configs to check and whether their models are
built now, the param space, search algorithm and scheduler of the Tuner, what the launch record
holds, and its own steps around the fit. ``harness.sweep.GridPlan`` runs cells on a grid (recorded
ones skipped); ``harness.search_run.SearchLaunch`` samples a space under one parent run, behind a
feasibility gate.
"""
from __future__ import annotations

import atexit
import gc
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from . import checks, interrupt, plugins, tracking
from .catalog import Sweep
from .checks import _check_run_args
from .errors import ConfigError, writable_folder
from .launch import check_same, latest
from .outcomes import Lost, SweepSummary, _first_line, collect
from .trial import TrialContext, run_trial


@dataclass(frozen=True)
class LaunchOptions:
    """How to launch, whatever the kind (the ``harness run`` options; README "Run options")."""

    address: Optional[str] = None  # a running Ray cluster; None: in-process Ray on this machine
    cpus_per_trial: float = 1  # also the trial's torch threads
    gpus_per_trial: float = 0  # fractions pack several trials on one GPU
    max_concurrent: Optional[int] = None
    tracking_uri: Optional[str] = None
    progress: bool = True  # one console line per trial start, finish and failure
    max_failures: int = 1  # retries of a trial whose worker died, from its last checkpoint
    resume: bool = False  # continue the last launch (Tuner.restore)
    storage_path: Optional[str] = None  # Tune's state and checkpoints (default: results_root())
    verbose: bool = False  # Ray's and Tune's own output too
    wait_for_resources: bool = False  # a cluster may add the nodes a trial needs (an autoscaler)
    settings: Optional[dict] = None  # harness.launch.settings_of: what --resume must find unchanged


class LaunchPlan:
    """What one kind of launch decides; ``launch`` calls these in its one order."""

    sweep: Sweep
    profile: str
    configs: list  # the configs checked before Ray starts
    trials: int  # how many trials the launch may run (the store's concurrency warning)
    check_models: bool = True  # build every config's model before Ray starts (a search gates its samples)
    early_stopping: bool = False  # a scheduler may end trials early (harness.outcomes.collect)
    search_plan = None  # a search's catalog.SearchPlan, carried in every trial's TrialContext

    def prepare(self, options: LaunchOptions) -> None:
        """The kind's own checks, before anything changes (ConfigError)."""

    def opened(self, uri: str, experiment_id: str, options: LaunchOptions) -> None:
        """The experiment is open (in the checks' thread, while Ray starts): what to read of the store."""

    def summary(self, uri: str) -> SweepSummary:
        return SweepSummary(sweep=self.sweep.name, profile=self.profile, experiment=self.sweep.name, tracking_uri=uri,
                            trials=[], wall_time_s=0.0)

    def nothing_to_run(self, options: LaunchOptions) -> bool:
        return False

    def open(self, storage: Path, uri: str, experiment_id: str, ctx: TrialContext,
             options: LaunchOptions) -> tuple[str, Optional[Path], dict, TrialContext]:
        """(Tune's experiment name, the folder to restore or None, the launch record, the trials' context)."""
        raise NotImplementedError

    def describe(self, trial) -> str:
        """What a trial's start line adds after its name."""
        return ""

    def callbacks(self, uri: str) -> list:
        """Tune callbacks of the kind's own, after the progress lines."""
        return []

    def tuner(self, trainable, ctx: TrialContext, run_config, options: LaunchOptions):
        """A new ``tune.Tuner`` of ``trainable`` (not called when the launch is restored)."""
        raise NotImplementedError

    def abandon(self, uri: str, error: BaseException) -> None:
        """The launch stopped before its summary (a signal, an error): what the kind must close."""

    def finish(self, summary: SweepSummary, uri: str, experiment_id: str) -> None:
        """After the summary is collected."""


def results_root() -> Path:
    """Where Tune keeps trial state and checkpoints (``--storage-path``; shared storage on a cluster)."""
    return Path(os.environ.get("HARNESS_RAY_RESULTS") or Path.home() / "ray_results")


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
        # and Ray's report of a trial's error that Tune has already handled (a documented Ray variable)
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    if plugins.runtime_env():  # the user's plugin files and folders, on every node (a worker imports them first)
        kwargs["runtime_env"] = plugins.runtime_env()
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count(), **kwargs)
    if interrupt.STOPS.active:  # ray.init installed its own SIGTERM handlers (sys.exit, a C++ stack dump)
        interrupt.STOPS.reinstall()
    # At exit the cyclic collector's last passes walk every object torch, Ray, Tune and MLflow made
    # (1.2 s of each `harness run`'s exit here); frozen first, they are skipped. Nothing waits on
    # them: MLflow commits each call, Tune closes its files, the process returns the memory.
    atexit.register(gc.freeze)


def launch(plan: LaunchPlan, o: LaunchOptions) -> SweepSummary:
    """Launch ``plan``'s trials (or resume its last launch) and wait for all of them."""
    _check_run_args(o.cpus_per_trial, o.gpus_per_trial, o.max_concurrent, o.max_failures)
    storage = Path(o.storage_path) if o.storage_path else results_root()
    if "://" not in str(o.storage_path or ""):  # s3:// and the like: Tune checks those itself
        writable_folder("--storage-path", storage)
    plan.prepare(o)
    if o.resume:  # refuse before anything changes, the other store included
        check_same(latest(plan.sweep, plan.profile, storage, tracking.resolve_uri(o.tracking_uri))[1], o.settings)
    uri = checks.preflight(plan.configs, plan.trials, o.tracking_uri, o.address, o.cpus_per_trial, o.max_concurrent,
                           o.gpus_per_trial, o.wait_for_resources, check_models=plan.check_models, verbose=o.verbose,
                           connect=lambda: init_ray(o.address, log_to_driver=o.verbose))

    def open_experiment():  # once the models pass, while Ray starts: a failing model records nothing
        experiment_id = tracking.ensure_experiment(uri, plan.sweep.name, {"paper": plan.sweep.paper,
                                                                          "sweep_file": plan.sweep.path.name})
        tracking.close_orphans(uri, experiment_id)
        plan.opened(uri, experiment_id, o)
        return experiment_id, trial_context(plan, uri, experiment_id, o.cpus_per_trial)

    start = time.perf_counter()
    (experiment_id, ctx), started = start_ray_while(
        checks.while_ray_starts(plan.configs, uri, check_models=plan.check_models, then=open_experiment), o)
    summary = plan.summary(uri)
    if plan.nothing_to_run(o):  # every cell recorded already: the store alone could tell, after Ray started
        if started:
            import ray

            ray.shutdown()
        return summary
    from ray import tune  # after Ray starts: 0.8 s of imports that no check needs

    trainable = tune.with_resources(run_trial, {"cpu": o.cpus_per_trial, "gpu": o.gpus_per_trial})
    try:
        name, restore_from, record, ctx = plan.open(storage, uri, experiment_id, ctx, o)
        if restore_from is not None:
            # The restored param space is the original one (the trials it launched, the old driver tag).
            tuner = tune.Tuner.restore(str(restore_from), trainable, resume_unfinished=True, resume_errored=True)
        else:
            callbacks = ([progress(plan.trials, plan.describe)] if o.progress else []) + plan.callbacks(uri)
            tuner = plan.tuner(trainable, ctx, tune_run_config(name, storage, o.max_failures, callbacks, o.verbose), o)
        grid = fit(tuner, uri, experiment_id, restore_from, ctx.tags["driver"])
        collect(grid, summary, uri, experiment_id, early_stopping=plan.early_stopping, expected=record.get("trials"))
    except BaseException as e:  # a signal before Tune ran (harness.interrupt.Interrupted), or an error
        plan.abandon(uri, e)
        raise
    plan.finish(summary, uri, experiment_id)
    summary.wall_time_s = time.perf_counter() - start
    return summary


def start_ray_while(checks_running, o: LaunchOptions) -> tuple:
    """``init_ray`` while ``checks_running`` (harness.checks.while_ray_starts) runs, which mostly
    waits on Ray's own processes; then (its result, whether this call started Ray). A failed check
    shuts down the Ray this call started and raises its ConfigError: no trial was queued."""
    import ray

    started = not ray.is_initialized()
    try:
        init_ray(o.address, log_to_driver=o.verbose)
    finally:
        error = checks_running.exception()  # wait for the checks, whatever init_ray did
    if error is not None:
        if started:
            ray.shutdown()
        raise error
    return checks_running.result(), started


def trial_context(plan: LaunchPlan, uri: str, experiment_id: str, cpus_per_trial: float) -> TrialContext:
    """What every trial of a launch shares: the store, its threads, the launch's tags and plugins."""
    sweep, sha = plan.sweep, tracking.git_sha()
    tags = {"sweep": sweep.name, "paper": sweep.paper, "profile": plan.profile,
            "artifact": ",".join(a.id for a in sweep.artifacts), "git_sha": sha,
            "driver": f"{platform.node()}:{os.getpid()}",
            # MLflow's own source tags fill the UI's Source column
            "mlflow.source.name": f"{sweep.path.parent.name}/{sweep.path.name}", "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": sha}
    # one tag per artifact, so the UI's search box finds one artifact's runs: tags."artifact.<id>" = 'true'
    tags.update({f"artifact.{a.id}": "true" for a in sweep.artifacts})
    return TrialContext(tracking_uri=uri, experiment_id=experiment_id, threads=max(1, int(cpus_per_trial)), tags=tags,
                        plugins=tuple(plugins.specs()), plan=plan.search_plan)


def with_parent(ctx: TrialContext, parent_run_id: str) -> TrialContext:
    """``ctx`` for the children of run ``parent_run_id`` (a search's trials)."""
    return replace(ctx, parent_run_id=parent_run_id)


def progress(total: int, describe=None):
    """A Tune callback printing one line per trial start, finish and failure, with a done counter;
    ``describe(trial)`` adds the trial's sampled values to its start line (searches). A trial's name
    is the one the launch gave it (``str(trial)``: Tune's custom trial name)."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.done = 0
            self.last: dict = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            extra = describe(trial) if describe else ""
            print(f"  started   {trial}" + (f"  {extra}" if extra else ""), flush=True)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def end(self, trial, word: str, detail: str) -> None:
            self.done += 1
            print(f"  {word:<9} {str(trial):<24} {detail} [{self.done}/{total}]", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = self.last.get(trial.trial_id, {})
            word = "stopped" if r.get("epoch", 0) < r.get("planned_epochs", 0) else "finished"
            self.end(trial, word, f"epochs={r.get('epoch', 0)} val_acc={r.get('val_acc', float('nan')):.2f} "
                                  f"test_acc={r.get('test_acc', float('nan')):.2f} "
                                  f"train_time_s={r.get('train_time_s', float('nan')):.1f}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.end(trial, "FAILED", "(reason in its MLflow run and the summary)")

    return Progress()


def tune_run_config(name: str, storage: Path, max_failures: int, callbacks: list, verbose: bool):
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


def fit(tuner, uri: str, experiment_id: str, restored: Optional[Path] = None, driver: str = ""):
    """``tuner.fit()`` with the store watched and the driver's signals turned into Tune's graceful stop
    (harness.interrupt); the ResultGrid, however the fit ended. A ``restored`` launch whose saved state
    Tune cannot continue (written on a full disk, say) is a ConfigError saying what to do instead; a
    fit that ran but whose results Tune cannot read back is ``Lost`` (``driver``: its runs' tag)."""
    with interrupt.STOPS.during_tune(), interrupt.StoreWatch(uri, experiment_id):
        try:
            return tuner.fit()
        except Exception as e:  # noqa: BLE001  (whatever Tune raised: its state, not this input, is bad)
            if restored is not None:
                raise ConfigError("--resume", str(restored),
                                  f"a launch whose Tune state can be continued (Tune failed on it: {_first_line(e)}); "
                                  "run the same command without --resume: cells recorded FINISHED are skipped"
                                  ) from None
            # Tune ran the trials but could not read its results back: the store says what they did
            return Lost(f"Tune could not read its results back: {_first_line(e)}", driver)
