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
  * re-running a sweep skips the cells whose config digest already has a FINISHED run, unless ``rerun``;
  * SIGINT, SIGTERM and a store that stops answering stop the launch through Tune's own graceful stop
    (harness.interrupt), and the summary is read back from the store (harness.outcomes.collect).

The launch itself is harness.launcher's, shared with searches; ``GridPlan`` is what a grid decides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import tracking
from .catalog import Cell, Sweep
from .launch import open_launch
from .launcher import LaunchOptions, LaunchPlan, launch
from .outcomes import SweepSummary
from .trial import TrialContext


class GridPlan(LaunchPlan):
    """Every cell one trial (Tune's grid search over the cells), the cells already recorded FINISHED
    skipped unless ``rerun``."""

    def __init__(self, sweep: Sweep, profile: str, cells: list[Cell], rerun: bool = False):
        self.sweep, self.profile, self.cells, self.rerun = sweep, profile, list(cells), rerun
        self.configs = [c.config for c in self.cells]
        self.trials = len(self.cells)
        self.done: set = set()
        self.skipped: list[Cell] = []

    def opened(self, uri: str, experiment_id: str, options: LaunchOptions) -> None:
        if not options.resume and not self.rerun:
            self.done = tracking.recorded_digests(uri, experiment_id)

    def summary(self, uri: str) -> SweepSummary:
        """The recorded cells dropped (the store was read while Ray started), and the summary to fill."""
        self.skipped = [c for c in self.cells if c.digest in self.done]
        self.cells = [c for c in self.cells if c.digest not in self.done]
        self.trials = len(self.cells)
        summary = super().summary(uri)
        summary.skipped = [c.name for c in self.skipped]
        return summary

    def nothing_to_run(self, options: LaunchOptions) -> bool:
        return not self.cells and not options.resume

    def open(self, storage: Path, uri: str, experiment_id: str, ctx: TrialContext,
             options: LaunchOptions) -> tuple[str, Optional[Path], dict, TrialContext]:
        name, restore_from, record = open_launch(self.sweep, self.profile, storage, uri, options.resume,
                                                 options.settings, trials=len(self.cells))
        return name, restore_from, record, ctx

    def tuner(self, trainable, ctx: TrialContext, run_config, options: LaunchOptions):
        from ray import tune

        return tune.Tuner(
            trainable,
            param_space={"cell": tune.grid_search(payload(self.cells)), "ctx": ctx.payload()},
            # reuse_actors: a finished trial's worker process takes the next one, so a sweep of short
            # trials does not pay a process start and the torch/harness imports per trial (6 tiny
            # trials: 116 s -> 24 s); every trial still seeds, builds and attaches its own run.
            tune_config=tune.TuneConfig(max_concurrent_trials=options.max_concurrent, reuse_actors=True,
                                        trial_name_creator=lambda t: t.config["cell"]["name"],
                                        trial_dirname_creator=lambda t: f"{t.trial_id}-{t.config['cell']['name']}"),
            run_config=run_config)


def run_sweep(sweep: Sweep, profile: str, cells: list[Cell], *, rerun: bool = False, **options) -> SweepSummary:
    """Launch every cell as a trial (or resume the last launch) and wait for all of them. ``options``:
    harness.launcher.LaunchOptions (``settings``, from ``launch.settings_of``, are recorded with the
    launch; ``resume`` refuses a launch started otherwise)."""
    return launch(GridPlan(sweep, profile, cells, rerun), LaunchOptions(**options))


def payload(cells: list[Cell]) -> list[dict]:
    """What a grid trial's config carries of its cell (``cell``): its row, name, resolved config and digest."""
    return [{"row": c.row, "name": c.name, "config": c.config, "digest": c.digest} for c in cells]
