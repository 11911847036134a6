"""What a launch ended with: each trial's outcome written into its MLflow run where only the driver
knows it, then the summary read back from the store (``collect``), never claimed from Tune's view alone."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import interrupt, tracking
from .adapters import trial_statuses
from .trial import TrialContext

# what a trial's summary line keeps of its last result (a search adds its objectives)
SUMMARY_METRICS = ("val_acc", "test_acc", "test_acc5", "train_time_s")


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
    stop_reason: Optional[str] = None  # SIGINT | SIGTERM | store: what stopped the launch (harness.interrupt)
    store_error: str = ""  # the store could not be read back (or written): no trial status is claimed
    unrecorded: int = 0  # trials Tune started that left no run in the store (--resume runs them)
    tune_error: str = ""  # Tune ran the trials but could not read its own results back (its storage failed)

    @property
    def failed(self) -> list:
        return [t for t in self.trials if t.status == "FAILED"]

    @property
    def interrupted(self) -> bool:
        return (self.stop_reason is not None or self.not_started > 0 or self.unrecorded > 0
                or any(t.status in ("KILLED", "RUNNING", "UNKNOWN") for t in self.trials))


def collect(grid, summary: SweepSummary, uri: str, experiment_id: str, early_stopping: bool,
             expected: Optional[int] = None) -> None:
    """Each trial's outcome into its MLflow run where the driver alone knows it (a trial an
    early-stopping scheduler ended, one that failed past its retries, one the stopped launch left
    running), then ``summary`` as the store holds it: every status is read back from the store, and
    when the store cannot be reached none is claimed (``summary.store_error``). ``expected``: the trials
    the launch holds; those Tune never created (interrupted) are not started."""
    summary.stop_reason = interrupt.STOPS.reason
    if isinstance(grid, Lost):
        _collect_from_store(grid, summary, uri, experiment_id)
        if expected is not None and not summary.store_error.startswith("could not be reached"):
            summary.not_started = max(0, expected - len(summary.trials))  # no run in the store: never started
        return
    # Tune's trial status (ResultGrid's own num_terminated reads the same list): ERROR failed;
    # TERMINATED is done when its last result says so (it returned, or a scheduler stopped it), but
    # Tune also marks TERMINATED the trials an interrupted fit (Ctrl-C) stops: those were cut short.
    statuses = trial_statuses(grid)
    outcomes = []
    for result, tune_status in zip(grid, statuses):
        if not result.config or (tune_status == "PENDING" and not result.metrics):
            summary.not_started += 1  # stopped before this trial started: no run
            continue
        m = result.metrics or {}
        # trial dirs are named "<trial_id>..." (trial_dirname_creator)
        trial_id = str(m.get("trial_id") or Path(result.path).name.split("-")[0])
        finished = tune_status == "TERMINATED" and not result.error and (
            m.get("done") or m.get("epoch", 0) >= m.get("planned_epochs", math.inf))
        outcomes.append((result, m, trial_id, finished))
    unreachable = interrupt.store_problem(uri)
    runs: dict = {}
    if unreachable is None:
        try:
            runs, unwritten = _close_runs(outcomes, uri, experiment_id, early_stopping)
        except Exception as e:  # noqa: BLE001  (the store failed between the probe and the reads)
            unreachable = _first_line(e)
        else:
            if unwritten:  # read, but not written (a full disk, a read-only file): the statuses are what it holds
                summary.store_error = f"could not be written ({unwritten})"
    if unreachable is not None:
        summary.store_error = f"could not be reached ({unreachable})"
    for result, m, trial_id, finished in outcomes:
        cell, sample_tags = TrialContext.from_payload(result.config["ctx"]).cell(result.config)
        run = runs.get(trial_id)
        if run is None and not unreachable:
            summary.unrecorded += 1  # started, but its run was never created (or the store lost it)
            continue
        status = run.info.status if run is not None else "UNKNOWN"
        stopped = status == "FINISHED" and early_stopping and m.get("epoch", 0) < m.get("planned_epochs", 0)
        summary.trials.append(TrialSummary(
            name=cell["name"], row=cell["row"], seed=cell["config"]["train"]["seed"], status=status,
            epochs=int(m.get("epoch", 0)), stopped_early=stopped,
            metrics={k: m[k] for k in (*SUMMARY_METRICS, *summary.extra_metrics) if k in m},
            error=_reason(result.error) if result.error else (run.data.tags.get("failure_reason", "") if run and
                                                              status != "FINISHED" else ""),
            run_id=run.info.run_id if run is not None else str(m.get("mlflow_run_id", "")), trial_id=trial_id,
            values=json.loads(sample_tags["sample"]) if sample_tags else {}))
    if expected is not None:
        summary.not_started += max(0, expected - len(outcomes) - summary.not_started)


@dataclass
class Lost:
    """What ``harness.launcher.fit`` returns when Tune ran the trials but failed to build its results (an
    error file its storage left empty on a full disk, say): the reason, and the driver tag of the
    launch's runs, by which the store alone then says what happened."""
    reason: str
    driver: str


def _collect_from_store(lost: Lost, summary: SweepSummary, uri: str, experiment_id: str) -> None:
    summary.tune_error = lost.reason
    problem = interrupt.store_problem(uri)
    if problem is not None:
        summary.store_error = f"could not be reached ({problem})"
        return
    c = tracking.client(uri)
    query = f"tags.driver = '{lost.driver}'"
    for run in c.search_runs([experiment_id], query + " and attributes.status = 'RUNNING'"):
        try:
            tracking.close_stopped(uri, run.info.run_id, lost.reason)
        except Exception as e:  # noqa: BLE001  (the read-back shows what the store holds)
            summary.store_error = summary.store_error or f"could not be written ({_first_line(e)})"
    for run in c.search_runs([experiment_id], query):
        if run.data.tags.get("search_parent") == "true" or run.data.tags.get("infeasible") == "true":
            continue
        seed = run.data.tags.get("seed", "0")
        summary.trials.append(TrialSummary(
            name=run.info.run_name, row=run.data.tags.get("row", ""), seed=int(seed) if seed.isdigit() else 0,
            status=run.info.status, epochs=len(c.get_metric_history(run.info.run_id, tracking.EPOCH_MARKER)),
            metrics={k: run.data.metrics[k] for k in ("val_acc", "test_acc", "train_time_s") if k in run.data.metrics},
            error=run.data.tags.get("failure_reason", "") if run.info.status != "FINISHED" else "",
            run_id=run.info.run_id, trial_id=run.data.tags.get("trial_id", "")))


def _close_runs(outcomes: list, uri: str, experiment_id: str, early_stopping: bool) -> tuple[dict, str]:
    """Close the runs only the driver can close, then read every trial's run back: (trial_id -> run,
    the first write that failed or "")."""
    c = tracking.client(uri)
    unwritten = ""

    def run_of(trial_id: str):
        found = c.search_runs([experiment_id], f"tags.trial_id = '{trial_id}'", max_results=1,
                              order_by=["attributes.start_time DESC"])
        return found[0] if found else None

    for result, m, trial_id, finished in outcomes:
        run = run_of(trial_id)
        if run is None:
            continue
        recorded, run_id = run.info.status, run.info.run_id
        try:
            if result.error:
                if recorded != "FAILED":  # its worker died past its retries, or Tune could not restore it
                    tracking.end_run(uri, run_id, "FAILED", _reason(result.error))
            elif finished:
                if recorded != "FINISHED":  # Tune ended it inside its last report (a scheduler's stop)
                    tracking.finish_stopped_early(uri, run_id, m, early_stopping and m.get("epoch", 0) < m.get(
                        "planned_epochs", 0))
            elif recorded == "RUNNING":  # the launch was stopped while this trial ran: --resume continues it
                tracking.close_stopped(uri, run_id, interrupt.STOPS.reason or "interrupted")
        except Exception as e:  # noqa: BLE001  (a write the store refused: the read-back shows what it holds)
            unwritten = unwritten or _first_line(e)
    return {tid: run for tid in dict.fromkeys(o[2] for o in outcomes) if (run := run_of(tid)) is not None}, unwritten


def _first_line(error: BaseException) -> str:
    lines = [line for line in f"{type(error).__name__}: {error}".splitlines() if line.strip()]
    return lines[0][:300]


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
