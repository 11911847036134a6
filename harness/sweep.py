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

import json
import math
import os
import platform
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import tracking
from .catalog import Cell, Sweep
from .errors import ConfigError, writable_folder

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


def _cell_of(param: dict) -> tuple[dict, dict]:
    """(the trial's cell, its tags): a grid trial carries its cell; a search trial its plan, its
    sampled values and its axis point, resolved here as the driver's gate resolved them."""
    if "cell" in param:
        return param["cell"], {}
    import json

    from .catalog import SearchPlan
    from .search import decode

    plan = SearchPlan.from_payload(param["plan"])
    values = decode(plan.spec, param["sample"])
    cell = plan.cell(values, param["sample_id"], param["point"])
    payload = {"row": cell.row, "name": plan.name(param["sample_id"], param["point"]), "config": cell.config,
               "digest": cell.digest}
    return payload, {"sample_id": param["sample_id"], "sample": json.dumps(values, sort_keys=True, default=str)[:5000]}


def _trial(param: dict) -> None:
    """The Tune function trainable: one cell, one MLflow run, one report and checkpoint per epoch."""
    import ray
    import torch
    from ray import tune

    from .config import RunConfig
    from .train import build_trainer

    ctx = param["ctx"]
    cell, sample_tags = _cell_of(param)
    trial_id = tune.get_context().get_trial_id()
    cfg = RunConfig.from_dict(cell["config"])
    tags = {**ctx["tags"], **sample_tags, "row": cell["row"], "config_digest": cell["digest"], "trial_id": trial_id,
            "dataset": cfg.data.dataset, "seed": cfg.train.seed,
            "ray_node_id": ray.get_runtime_context().get_node_id(), "worker": f"{platform.node()}:{os.getpid()}"}
    if ctx.get("parent_run_id"):
        tags["mlflow.parentRunId"] = ctx["parent_run_id"]
    run = tracking.TrialRun(ctx["tracking_uri"], ctx["experiment_id"], cell["name"], cell["config"], tags)
    planned = {"epoch": cfg.train.epochs, "planned_epochs": cfg.train.epochs, "mlflow_run_id": run.run_id}
    if run.finished_metrics is not None:
        tune.report({**run.finished_metrics, **planned})
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
            # MLflow first: Tune may end the trial inside report (an early-stopping scheduler's
            # decision), and the epoch it was decided on must be in the run.
            start = time.perf_counter()
            run.log_epoch(epoch, metrics)
            logged = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"trainer": trainer.state_dict(), "history": history}, Path(folder) / CHECKPOINT_FILE)
                tune.report({**metrics, **counts, **planned, "epoch": epoch},
                            checkpoint=tune.Checkpoint.from_directory(folder))
            overhead["log_total_s"] += logged - start
            overhead["checkpoint_total_s"] += time.perf_counter() - logged

        results = trainer.run(on_epoch)
        run.log_final({**results, **overhead}, keys=getattr(trainer, "final_keys", ()))
        if cfg.train.save_model:
            run.log_torch(trainer.saved_model(), "model.pt")
    except SystemExit:
        # Tune ended the trial inside tune.report: a scheduler's stop or pause, or the sweep being
        # stopped. Only the driver knows which, and it records the run's status (run_sweep).
        raise
    except KeyboardInterrupt:
        run.finish("KILLED", "interrupted")
        raise
    except BaseException as e:
        run.finish("FAILED", f"{type(e).__name__}: {e}")
        raise
    run.finish("FINISHED")


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


def _check_run_args(cpus_per_trial, gpus_per_trial, max_concurrent, max_failures) -> None:
    if not (isinstance(cpus_per_trial, (int, float)) and math.isfinite(cpus_per_trial) and cpus_per_trial > 0):
        raise ConfigError("--cpus-per-trial", cpus_per_trial, "a number > 0")
    if not (isinstance(gpus_per_trial, (int, float)) and math.isfinite(gpus_per_trial) and gpus_per_trial >= 0):
        raise ConfigError("--gpus-per-trial", gpus_per_trial, "a number >= 0")
    if max_concurrent is not None and max_concurrent <= 0:
        raise ConfigError("--max-concurrent", max_concurrent, "an integer > 0")
    if max_failures < 0:
        raise ConfigError("--max-failures", max_failures, "an integer >= 0")


def _preflight(configs: list[dict], n_trials: int, tracking_uri: Optional[str], address: Optional[str],
               cpus_per_trial: float, max_concurrent: Optional[int], gpus_per_trial: float = 0,
               wait_for_resources: bool = False, check_models: bool = True, verbose: bool = False) -> str:
    """Datasets on disk, models that build, resources that exist and the store reachable, before any
    trial is queued (and, on this machine, before Ray starts); returns the store's URI."""
    from . import data
    from .methods.base import Experiment, build_method

    def method_of(config):
        return build_method(config["method"]["name"], config["method"]["options"])

    _check_address(address)
    for name, root, download in {(c["data"]["dataset"], c["data"]["data_root"], c["data"]["download"])
                                 for c in configs if getattr(method_of(c), "uses_dataset", True)}:
        if root is not None and not download and not Path(root).expanduser().is_dir():
            raise ConfigError("data.data_root", root, "an existing folder (searched first for the dataset), or null")
        if download and not data.downloadable(name):
            raise ConfigError("data.download", True, f"false: {name} cannot be downloaded")
        if not download:
            data.locate(name, root)  # DatasetNotFound before Ray starts, naming every place searched
    if check_models:  # a search's samples are gated one by one instead (an infeasible one is recorded)
        _check_models([c for c in configs if not isinstance(method_of(c), Experiment)])
    _check_resources(configs, address, cpus_per_trial, gpus_per_trial, wait_for_resources, verbose)
    uri = tracking.resolve_uri(tracking_uri)
    tracking.check_reachable(uri)
    if uri.startswith("sqlite:"):
        parallel = min(n_trials, max_concurrent or n_trials, int((os.cpu_count() or 1) / cpus_per_trial))
        if address:
            print("warning: a SQLite store is one file on this machine; trials on other nodes cannot write to "
                  "it. Use an MLflow server (--tracking-uri http://...), see README 'A Ray cluster'.", flush=True)
        elif parallel > SQLITE_TESTED_CONCURRENCY:
            print(f"warning: up to {parallel} trials may write to SQLite at once; it is tested up to "
                  f"{SQLITE_TESTED_CONCURRENCY}. Use --max-concurrent {SQLITE_TESTED_CONCURRENCY} or an MLflow server.",
                  flush=True)
    return uri


def _check_address(address: Optional[str]) -> None:
    """A Ray address nothing answers at fails in seconds, not after Ray's minutes of reconnecting."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.rpartition("://")[2].rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--address", address, "host:port of a Ray head (HEAD:6379), ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConfigError("--address", address, f"the address of a running Ray cluster (nothing answers at "
                                                f"{host}:{port}: {e.strerror or e})") from None


def _check_resources(configs: list[dict], address: Optional[str], cpus_per_trial: float, gpus_per_trial: float,
                     wait: bool, verbose: bool) -> None:
    """Trials that no node can hold, or that need a GPU where none is, would wait or fail forever:
    refuse before any is queued. On this machine that needs no Ray; a cluster is asked (``wait``:
    queue them anyway, for an autoscaling cluster whose nodes join later)."""
    import ray

    if address is None and not ray.is_initialized():
        import torch

        where, nodes = "this machine", [{"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}]
    else:
        if not ray.is_initialized():
            init_ray(address, log_to_driver=verbose)
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        where = f"the cluster's {len(nodes)} node(s)"
    if wait:
        return
    have = "; ".join(f"{n.get('CPU', 0):g} CPUs and {n.get('GPU', 0):g} GPUs" for n in nodes) or "none"
    hint = "; on an autoscaling cluster --wait-for-resources queues the trials until nodes join" if address else ""
    cpus_ok = any(n.get("CPU", 0) >= cpus_per_trial for n in nodes)
    gpus_ok = any(n.get("GPU", 0) >= gpus_per_trial for n in nodes)
    if not (cpus_ok and gpus_ok and any(n.get("CPU", 0) >= cpus_per_trial and n.get("GPU", 0) >= gpus_per_trial
                                        for n in nodes)):
        key, value = ("--gpus-per-trial", gpus_per_trial) if not gpus_ok else ("--cpus-per-trial", cpus_per_trial)
        raise ConfigError(key, value, f"at most what one node has: {where} has {have}{hint}")
    gpus = max(n.get("GPU", 0) for n in nodes)
    for device in sorted({c["train"]["device"] for c in configs if c["train"]["device"].startswith("cuda")}):
        index = int(device.partition(":")[2] or 0)
        if index >= gpus:
            raise ConfigError("train.device", device, f"auto or cpu, or a GPU that exists: {where} has {have}{hint}")
        if address and gpus_per_trial == 0 and any(n.get("GPU", 0) == 0 for n in nodes):
            raise ConfigError("train.device", device, "auto or cpu with --gpus-per-trial 0: trials may land on "
                                                      "nodes without a GPU (pass --gpus-per-trial)")


def _check_models(configs: list[dict]) -> None:
    """Every distinct model builds and runs at its dataset's registered input size, counted on the
    meta device as a trial will count it: a bad option is found here, not in every trial."""
    from . import data, measure
    from .config import option_key

    seen = set()
    for c in configs:
        d, m = c["data"], c["model"]
        key = json.dumps([m, d["dataset"], d["image_size"], d["classes"]], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        shape, classes = data.nominal_shape(d["dataset"], d["image_size"], d["classes"])
        try:
            measure.profile_model(m["name"], {**m["options"], "num_classes": classes}, shape)
        except ConfigError as e:
            raise option_key(e) from None
        except Exception as e:  # a shape error deep in the model: name the model and the input
            raise ConfigError("model", {"name": m["name"], "options": m["options"]},
                              f"a model that runs on {d['dataset']}'s {'x'.join(map(str, shape))} images "
                              f"({_reason(e)})") from None


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
    from ray import tune

    storage = _storage(storage_path, cpus_per_trial, gpus_per_trial, max_concurrent, max_failures)
    if resume:  # refuse before anything changes, the other store included
        _latest_experiment(sweep, profile, storage, tracking.resolve_uri(tracking_uri))
    uri = _preflight([c.config for c in cells], len(cells), tracking_uri, address, cpus_per_trial, max_concurrent,
                     gpus_per_trial, wait_for_resources, verbose=verbose)
    experiment_id = tracking.ensure_experiment(uri, sweep.name, {"paper": sweep.paper, "sweep_file": sweep.path.name})
    tracking.close_orphans(uri, experiment_id)
    skipped = []
    if not resume and not rerun:
        done = tracking.recorded_digests(uri, experiment_id)
        skipped = [c for c in cells if c.digest in done]
        cells = [c for c in cells if c.digest not in done]
    summary = SweepSummary(sweep=sweep.name, profile=profile, experiment=sweep.name, tracking_uri=uri, trials=[],
                           wall_time_s=0.0, skipped=[c.name for c in skipped])
    if not cells and not resume:
        return summary
    ctx = _context(sweep, profile, uri, experiment_id, cpus_per_trial)
    start = time.perf_counter()
    init_ray(address, log_to_driver=verbose)
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


def run_search(sweep: Sweep, profile: str, plan, *, address: Optional[str] = None, cpus_per_trial: float = 1,
               gpus_per_trial: float = 0, max_concurrent: Optional[int] = None, tracking_uri: Optional[str] = None,
               progress: bool = True, max_failures: int = 1, resume: bool = False,
               storage_path: Optional[str] = None, verbose: bool = False,
               wait_for_resources: bool = False) -> SweepSummary:
    """Sample ``plan``'s space with Tune's searcher (and scheduler), one trial per sample and axis
    point, under one MLflow parent run per launch; or continue the last launch (``resume``)."""
    from ray import tune

    from . import search, searchers

    storage = _storage(storage_path, cpus_per_trial, gpus_per_trial, max_concurrent, max_failures)
    spec = plan.spec
    corner_configs = [plan.resolve({k: v}, 0).to_dict() for k, v in search.corners(spec)]
    max_epochs = max(c["train"]["epochs"] for c in corner_configs)
    scheduler = search.build_scheduler(spec, max_epochs)  # ConfigError before Ray starts
    if resume:  # refuse before anything changes, the other store included
        _latest_experiment(sweep, profile, storage, tracking.resolve_uri(tracking_uri))
    uri = _preflight(corner_configs, spec.num_samples * len(plan.points), tracking_uri, address, cpus_per_trial,
                     max_concurrent, gpus_per_trial, wait_for_resources, check_models=False, verbose=verbose)
    experiment_id = tracking.ensure_experiment(uri, sweep.name, {"paper": sweep.paper, "sweep_file": sweep.path.name})
    tracking.close_orphans(uri, experiment_id)
    ctx = _context(sweep, profile, uri, experiment_id, cpus_per_trial)
    summary = SweepSummary(sweep=sweep.name, profile=profile, experiment=sweep.name, tracking_uri=uri, trials=[],
                           wall_time_s=0.0, extra_metrics=tuple(spec.objectives))
    start = time.perf_counter()
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
    init_ray(address, log_to_driver=verbose)
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

    cause = getattr(error, "cause", None) or error
    text = f"{type(cause).__name__}: {cause}"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def _payload(cells: list[Cell]) -> list[dict]:
    return [{"row": c.row, "name": c.name, "config": c.config, "digest": c.digest} for c in cells]
