"""The Tune function trainable: one cell, one MLflow run, one report and checkpoint per epoch.

``_trial(param)`` runs inside a Ray worker. It builds the cell's runner (harness.train.build_runner)
and talks to it only through the harness.runner.Runner protocol: ``run(on_epoch)``,
``state_dict()`` / ``load_state_dict()``, ``counts()`` and ``saved_model()``. Per epoch the
metrics go to MLflow first, then to Tune with a checkpoint (the runner's state and the epochs
logged so far); a retried trial loads the last checkpoint, re-logs the epochs MLflow may have
missed, and continues the same run. The run ends FINISHED, KILLED (interrupted) or FAILED; a
trial Tune itself ends inside its report (a scheduler's stop) is left to the driver to record.
Every run is tagged with its ``precision``; the Trainer hands its loader's tags and its dataset
(an MLflow input) to the run as it builds them, and ``train.system_metrics`` samples MLflow's
system metrics from the start of training to its end, however it ends.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from . import tracking

CHECKPOINT_FILE = "trainer.pt"  # the name checkpoints of earlier launches have: --resume reads them


def _cell_of(param: dict) -> tuple[dict, dict]:
    """(the trial's cell, its tags): a grid trial carries its cell; a search trial its plan, its
    sampled values and its axis point, resolved here as the driver's gate resolved them."""
    if "cell" in param:
        return param["cell"], {}
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
    from .train import build_runner

    ctx = param["ctx"]
    cell, sample_tags = _cell_of(param)
    trial_id = tune.get_context().get_trial_id()
    cfg = RunConfig.from_dict(cell["config"])
    tags = {**ctx["tags"], **sample_tags, "row": cell["row"], "config_digest": cell["digest"], "trial_id": trial_id,
            "dataset": cfg.data.dataset, "seed": cfg.train.seed, "precision": cfg.train.precision,
            "ray_node_id": ray.get_runtime_context().get_node_id(), "worker": f"{platform.node()}:{os.getpid()}"}
    if ctx.get("parent_run_id"):
        tags["mlflow.parentRunId"] = ctx["parent_run_id"]
    run = tracking.TrialRun(ctx["tracking_uri"], ctx["experiment_id"], cell["name"], cell["config"], tags)
    planned = {"epoch": cfg.train.epochs, "planned_epochs": cfg.train.epochs, "mlflow_run_id": run.run_id}
    if run.finished_metrics is not None:
        tune.report({**run.finished_metrics, **planned})
        return
    try:
        # the Trainer (its loader and dataset logged as it builds them), or an experiment's runner
        runner = build_runner(cfg, threads=ctx["threads"], on_data=run.log_data)
        history: dict = {}
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                saved = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
            runner.load_state_dict(saved["trainer"])
            history = saved["history"]
            for epoch in sorted(history):  # epochs checkpointed but not yet in MLflow when the worker died
                run.log_epoch(epoch, history[epoch])
        counts = runner.counts()

        overhead = {"checkpoint_total_s": 0.0, "log_total_s": 0.0}  # where a trial's time goes besides training

        def on_epoch(epoch: int, metrics: dict) -> None:
            history[epoch] = metrics
            # MLflow first: Tune may end the trial inside report (an early-stopping scheduler's
            # decision), and the epoch it was decided on must be in the run.
            start = time.perf_counter()
            run.log_epoch(epoch, metrics)
            logged = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"trainer": runner.state_dict(), "history": history}, Path(folder) / CHECKPOINT_FILE)
                tune.report({**metrics, **counts, **planned, "epoch": epoch},
                            checkpoint=tune.Checkpoint.from_directory(folder))
            overhead["log_total_s"] += logged - start
            overhead["checkpoint_total_s"] += time.perf_counter() - logged

        if cfg.train.system_metrics:
            run.start_system_metrics()
        try:
            result = runner.run(on_epoch)
        finally:
            run.stop_system_metrics()
        run.log_final({**result.metrics, **result.final, **overhead}, keys=[*result.final, *overhead])
        if cfg.train.save_model:
            run.log_torch(runner.saved_model(), "model.pt")
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
