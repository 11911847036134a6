"""What a launch prints when it ends: the summary of its trials as the store holds them, a search's
front, what stopped it, and its exit status (0; 1 when a trial failed; 2 bad input, from the CLI;
130 SIGINT, 143 SIGTERM, 75 a store that failed: harness.interrupt)."""
from __future__ import annotations

import json

from .interrupt import EXIT_CODES, STOPS


def print_summary(summary) -> None:
    """Every trial as the store holds it (harness.outcomes.collect read it back), or, when the store could
    not be read, no status at all; then what stopped the launch and how to continue."""
    print(f"\nsummary of {len(summary.trials)} trials ({summary.wall_time_s:.0f} s), "
          f"MLflow experiment {summary.experiment!r} at {summary.tracking_uri}:")
    unknown = summary.store_error.startswith("could not be reached")
    for t in sorted(summary.trials, key=lambda t: t.name):
        m = "  ".join(f"{k}={v:.4g}" if k in summary.extra_metrics else f"{k}={v:.2f}" for k, v in t.metrics.items())
        early = " (stopped early)" if t.stopped_early else ""
        status = "?" if unknown else t.status
        print(f"  {status:<9} {t.name:<24} epochs={t.epochs:<4}{early} {m} {t.error}")
    if summary.store_error:
        print(f"the store {summary.tracking_uri} {summary.store_error}: "
              + ("no trial's status is claimed (epochs are what Tune saw). " if unknown else
                 "the statuses above are what it holds. ")
              + "Once it answers and takes writes: the same command with --resume records every trial.")
    if summary.tune_error:
        print(f"{summary.tune_error} (its storage failed?); the trials above are the launch's runs as the store "
              f"holds them.")
    if summary.search is not None:
        print_search(summary)
    if summary.not_started:
        print(f"{summary.not_started} trial(s) never started.")
    if summary.unrecorded:
        print(f"{summary.unrecorded} trial(s) started but left no run in the store.")
    if summary.failed:
        print(f"{len(summary.failed)} trial(s) failed; their MLflow runs are FAILED with the reason.")
    if summary.interrupted:
        held = {s: sum(t.status == s for t in summary.trials) for s in ("KILLED", "RUNNING")}
        cause = {"SIGINT": "interrupted (SIGINT)", "SIGTERM": "stopped by SIGTERM",
                 "store": "stopped: the store failed"}.get(summary.stop_reason or "", "interrupted")
        code = EXIT_CODES.get(summary.stop_reason or "SIGINT")
        if unknown:
            print(f"{cause}: Tune saved its state. Continue with the same command and --resume (exit {code}).")
        else:
            running = f", {held['RUNNING']} still RUNNING (its close was not written)" if held["RUNNING"] else ""
            print(f"{cause}: {held['KILLED']} trial(s) KILLED in MLflow{running}, {summary.not_started} never started. "
                  f"Continue with the same command and --resume.")


def print_search(summary) -> None:
    s = summary.search
    print(f"search: {s['algorithm']}, scheduler {s['scheduler']}, parent run {s['parent_run_id']}; "
          f"{len(s['infeasible'])} infeasible sample(s) recorded, never trained")
    for i in s["infeasible"]:
        print(f"  infeasible {i['name']:<12} {i['reason']}")
    for objective, row in s["best"].items():
        print(f"  best {objective} ({s['objectives'][objective]}): {row['sample']} {objective}={row[objective]:.4g} "
              f"{_values(row['values'])}")
    print(f"Pareto front over {', '.join(f'{k} ({v})' for k, v in s['objectives'].items())}: {len(s['front'])} sample(s)")
    for row in s["front"]:
        objectives = " ".join(f"{k}={row[k]:.4g}" for k in s["objectives"])
        print(f"  {row['sample']:<10} {objectives}  {_values(row['values'])}")


def _values(values: dict) -> str:
    return " ".join(f"{k}={json.dumps(v, separators=(',', ':')) if isinstance(v, dict) else (f'{v:.4g}' if isinstance(v, float) else v)}"
                    for k, v in values.items())


def exit_code(summary) -> int:
    summary.stop_reason = summary.stop_reason or STOPS.reason  # a signal while a reproduction reported
    if summary.stop_reason:  # 130 SIGINT, 143 SIGTERM (as a shell reports them), 75 the store failed
        return EXIT_CODES[summary.stop_reason]
    if summary.store_error:
        return EXIT_CODES["store"]
    if summary.tune_error:
        return 1
    if summary.interrupted:
        return 130  # Tune was stopped by a SIGINT this process did not handle itself
    # any FAILED trial: a script or a SLURM job must not read a partial sweep as a whole one (an
    # infeasible search sample, never trained, is no trial and no failure)
    return 1 if summary.failed else 0


def stopped_early(e) -> int:
    """A signal before any trial ran (harness.interrupt.Interrupted): nothing was trained."""
    print(f"\nharness: stopped by {e.reason} before any trial ran: no trial's run was recorded. Start it again "
          f"with the same command.", flush=True)
    return EXIT_CODES[e.reason]


def print_ui_hint(uri: str) -> None:
    print(f"\nOpen the MLflow UI:  harness ui --tracking-uri {uri}   (or: mlflow ui --backend-store-uri {uri})")
