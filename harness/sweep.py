"""Run a sweep's cells as Ray Tune trials, each logging its own MLflow run; return a summary.

Ray runs in-process on this machine by default (``ray.init`` with the machine's CPUs), or joins a
cluster given ``address``. Every cell is checked and the tracking store reached before Ray starts.

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

import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import tracking
from .catalog import Cell, Sweep
from .errors import ConfigError

CHECKPOINT_FILE = "trainer.pt"
SQLITE_TESTED_CONCURRENCY = 8  # trials writing one SQLite store at once without loss (tests/test_cluster.py)


def results_root() -> Path:
    """Where Tune keeps trial state and checkpoints (``--storage-path``; shared storage on a cluster)."""
    return Path(os.environ.get("HARNESS_RAY_RESULTS") or Path.home() / "ray_results")


@dataclass
class TrialSummary:
    name: str
    row: str
    seed: int
    status: str  # FINISHED | FAILED
    epochs: int = 0
    metrics: dict = field(default_factory=dict)
    error: str = ""
    run_id: str = ""


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

    @property
    def failed(self) -> list:
        return [t for t in self.trials if t.status != "FINISHED"]


def _trial(param: dict) -> None:
    """The Tune function trainable: one cell, one MLflow run, one report and checkpoint per epoch."""
    import ray
    import torch
    from ray import tune

    from .config import RunConfig
    from .train import build_trainer

    cell, ctx = param["cell"], param["ctx"]
    trial_id = tune.get_context().get_trial_id()
    cfg = RunConfig.from_dict(cell["config"])
    tags = {**ctx["tags"], "row": cell["row"], "config_digest": cell["digest"], "trial_id": trial_id,
            "dataset": cfg.data.dataset, "seed": cfg.train.seed,
            "ray_node_id": ray.get_runtime_context().get_node_id(), "worker": f"{platform.node()}:{os.getpid()}"}
    run = tracking.TrialRun(ctx["tracking_uri"], ctx["experiment_id"], cell["name"], cell["config"], tags)
    if run.finished_metrics is not None:
        tune.report({**run.finished_metrics, "epoch": cfg.train.epochs, "mlflow_run_id": run.run_id})
        return
    try:
        trainer = build_trainer(cfg, threads=ctx["threads"])  # the Trainer, or an experiment's runner
        history: dict = {}
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                saved = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
            trainer.load_state_dict(saved["trainer"])
            history = saved["history"]
            for epoch in sorted(history):  # epochs checkpointed but not yet in MLflow when the worker died
                run.log_epoch(epoch, history[epoch])
        counts = trainer.counts_summary()

        overhead = {"checkpoint_total_s": 0.0, "log_total_s": 0.0}  # where a trial's time goes besides training

        def on_epoch(epoch: int, metrics: dict, _trainer) -> None:
            history[epoch] = metrics
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"trainer": trainer.state_dict(), "history": history}, Path(folder) / CHECKPOINT_FILE)
                tune.report({**metrics, **counts, "epoch": epoch, "mlflow_run_id": run.run_id},
                            checkpoint=tune.Checkpoint.from_directory(folder))
            logged = time.perf_counter()
            run.log_epoch(epoch, metrics)
            overhead["checkpoint_total_s"] += logged - start
            overhead["log_total_s"] += time.perf_counter() - logged

        results = trainer.run(on_epoch)
        run.log_final({**results, **overhead}, keys=getattr(trainer, "final_keys", ()))
        if cfg.train.save_model:
            run.log_torch(trainer.saved_model(), "model.pt")
    except (KeyboardInterrupt, SystemExit):
        run.finish("KILLED", "interrupted")
        raise
    except BaseException as e:
        run.finish("FAILED", f"{type(e).__name__}: {e}")
        raise
    run.finish("FINISHED")


def _progress(total: int):
    """A Tune callback printing one line per trial start, finish and failure, with a done counter."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.done = 0
            self.last: dict = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            print(f"  started   {trial.config['cell']['name']}", flush=True)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def _end(self, trial, word: str, detail: str) -> None:
            self.done += 1
            print(f"  {word:<9} {trial.config['cell']['name']:<24} {detail} [{self.done}/{total}]", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = self.last.get(trial.trial_id, {})
            self._end(trial, "finished", f"epochs={r.get('epoch', 0)} val_acc={r.get('val_acc', float('nan')):.2f} "
                                         f"test_acc={r.get('test_acc', float('nan')):.2f} "
                                         f"train_time_s={r.get('train_time_s', float('nan')):.1f}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._end(trial, "FAILED", "(reason in its MLflow run and the summary)")

    return Progress()


def init_ray(address: Optional[str]) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs = dict(include_dashboard=False, configure_logging=False, log_to_driver=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count(), **kwargs)


def _latest_experiment(sweep: Sweep, profile: str, storage: Path) -> Path:
    found = sorted(storage.glob(f"{sweep.name}-{profile}-*"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigError("--resume", f"{sweep.name} at profile {profile}",
                          f"a sweep started before under {storage} (none found; run it without --resume)")
    return found[-1]


def run_sweep(sweep: Sweep, profile: str, cells: list[Cell], *, address: Optional[str] = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, max_concurrent: Optional[int] = None,
              tracking_uri: Optional[str] = None, progress: bool = True, max_failures: int = 1,
              resume: bool = False, rerun: bool = False, storage_path: Optional[str] = None) -> SweepSummary:
    """Launch every cell as a trial (or resume the last launch) and wait for all of them."""
    from ray import tune

    if cpus_per_trial <= 0:
        raise ConfigError("--cpus-per-trial", cpus_per_trial, "a number > 0")
    if gpus_per_trial < 0:
        raise ConfigError("--gpus-per-trial", gpus_per_trial, "a number >= 0")
    if max_concurrent is not None and max_concurrent <= 0:
        raise ConfigError("--max-concurrent", max_concurrent, "an integer > 0")
    if max_failures < 0:
        raise ConfigError("--max-failures", max_failures, "an integer >= 0")
    from . import data

    from .methods.base import build_method

    def reads_data(cell) -> bool:  # an experiment that generates its own data needs none on disk
        method = cell.config["method"]
        return getattr(build_method(method["name"], method["options"]), "uses_dataset", True)

    for d in {(c.config["data"]["dataset"], c.config["data"]["data_root"]) for c in cells
              if not c.config["data"]["download"] and reads_data(c)}:
        data.locate(*d)  # DatasetNotFound before Ray starts, naming every place searched
    uri = tracking.resolve_uri(tracking_uri)
    tracking.check_reachable(uri)
    if uri.startswith("sqlite:"):
        parallel = min(len(cells), max_concurrent or len(cells), int((os.cpu_count() or 1) / cpus_per_trial))
        if address:
            print("warning: a SQLite store is one file on this machine; trials on other nodes cannot write to "
                  "it. Use an MLflow server (--tracking-uri http://...), see README 'A Ray cluster'.", flush=True)
        elif parallel > SQLITE_TESTED_CONCURRENCY:
            print(f"warning: up to {parallel} trials may write to SQLite at once; it is tested up to "
                  f"{SQLITE_TESTED_CONCURRENCY}. Use --max-concurrent {SQLITE_TESTED_CONCURRENCY} or an MLflow server.",
                  flush=True)
    experiment_id = tracking.ensure_experiment(uri, sweep.name, {"paper": sweep.paper, "sweep_file": sweep.path.name})
    storage = Path(storage_path) if storage_path else results_root()
    restore_from = _latest_experiment(sweep, profile, storage) if resume else None
    tracking.close_orphans(uri, experiment_id)
    skipped = []
    if not resume and not rerun:
        done = tracking.recorded_digests(uri, experiment_id)
        skipped = [c for c in cells if c.digest in done]
        cells = [c for c in cells if c.digest not in done]
    ctx = {"tracking_uri": uri, "experiment_id": experiment_id, "threads": max(1, int(cpus_per_trial)),
           "tags": {"sweep": sweep.name, "paper": sweep.paper, "profile": profile,
                    "artifact": ",".join(a.id for a in sweep.artifacts), "git_sha": tracking.git_sha(),
                    "driver": f"{platform.node()}:{os.getpid()}"}}
    start = time.perf_counter()
    if not cells and not resume:
        return SweepSummary(sweep=sweep.name, profile=profile, experiment=sweep.name, tracking_uri=uri, trials=[],
                            wall_time_s=0.0, skipped=[c.name for c in skipped])
    init_ray(address)
    # CheckpointConfig(num_to_keep=1) makes Tune snapshot the experiment state whenever a trial
    # checkpoints: that is what lets --resume pick up exactly where a killed driver stopped, and its
    # cost is small (benchmarks/RESULTS.md), so Tune's repeated warning about it is silenced.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    trainable = tune.with_resources(_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
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
            run_config=tune.RunConfig(
                name=f"{sweep.name}-{profile}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(storage), verbose=0,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[_progress(len(cells))] if progress else []),
        )
    grid = tuner.fit()
    trials, errored, not_started = [], {}, 0
    for result in grid:
        if not result.config:  # interrupted (Ctrl-C) before this trial started: no config, no run
            not_started += 1
            continue
        cell = result.config["cell"]
        m = result.metrics or {}
        error = f"{type(result.error).__name__}: {result.error}".splitlines()[0] if result.error else ""
        if result.error:  # trial dirs are named "<trial_id>-<cell>" (trial_dirname_creator)
            errored[m.get("trial_id") or Path(result.path).name.split("-")[0]] = error
        trials.append(TrialSummary(
            name=cell["name"], row=cell["row"], seed=cell["config"]["train"]["seed"],
            status="FAILED" if result.error else "FINISHED", epochs=int(m.get("epoch", 0)),
            metrics={k: m[k] for k in ("val_acc", "test_acc", "test_acc5", "train_time_s") if k in m},
            error=error, run_id=str(m.get("mlflow_run_id", ""))))
    tracking.terminate_stale_runs(uri, experiment_id, errored)
    return SweepSummary(sweep=sweep.name, profile=profile, experiment=sweep.name, tracking_uri=uri, trials=trials,
                        wall_time_s=time.perf_counter() - start, skipped=[c.name for c in skipped],
                        not_started=not_started)


def _payload(cells: list[Cell]) -> list[dict]:
    return [{"row": c.row, "name": c.name, "config": c.config, "digest": c.digest} for c in cells]
