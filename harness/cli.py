"""The ``harness`` command: models, profile, list, run, report, site, export, reproduce, sampling, ui, env."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
from fractions import Fraction
from pathlib import Path

from . import console, listing, plugins
from .errors import ConfigError, DatasetNotFound, writable_folder
from .sweepfile import PROFILES


def _profile(args) -> int:
    from . import measure
    from .config import _split_set

    options = dict(_split_set(text, example="width=0.5") for text in args.set or [])
    shape = measure.parse_input(args.input) if args.input else None
    result = measure.profile_model(args.model, options, shape, by_layer=args.by_layer)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.model} at {result['input']}: params={result['params']:,} macs={result['macs']:,} "
          f"flops={result['flops']:,}  (flops = 2 x macs; conv and linear layers)")
    if result["nonzero_params"] != result["params"] or result["binary_adds"]:  # sparse or binary kernels
        print(f"  nonzero_params={result['nonzero_params']:,} binary_adds={result['binary_adds']:,}  "
              "(macs count full-precision multiplications only)")
    for layer in result.get("layers", []):
        print(f"  {layer['name']:<40} {layer['type']:<14} params={layer['params']:>10,} macs={layer['macs']:>14,}")
    return 0


def _sets(args) -> list[str]:
    return list(args.set or [])


def _run_sweep(args):
    from . import catalog
    from .search_run import run_search
    from .launch import settings_of
    from .sweep import run_sweep

    sweep, artifacts = catalog.resolve(args.target)
    for a in sweep.artifacts:  # a report that does not exist fails now, not after the sweep
        catalog.report_function(a)
    common = dict(address=args.address, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                  max_concurrent=args.max_concurrent, tracking_uri=args.tracking_uri, progress=not args.quiet,
                  max_failures=args.max_failures, resume=args.resume, storage_path=args.storage_path,
                  verbose=args.verbose, wait_for_resources=args.wait_for_resources,
                  settings=settings_of(sweep, _sets(args), args.dataset, num_samples=args.num_samples,
                                           search_seed=args.search_seed, algorithm=args.algorithm))
    instead = f", dataset {args.dataset} instead of the paper's" if args.dataset is not None else ""
    if sweep.is_search or args.num_samples is not None or args.search_seed is not None or args.algorithm:
        plan = sweep.search_plan(args.profile, dataset=args.dataset, sets=_sets(args), num_samples=args.num_samples,
                                 seed=args.search_seed, algorithm=args.algorithm)
        spec = plan.spec
        objectives = ", ".join(f"{k} {v}" for k, v in spec.objectives.items())
        print(f"sweep {sweep.name} ({sweep.path}), profile {args.profile}: search of {spec.num_samples} samples"
              + (f" x {len(plan.points)} axis points" if len(plan.points) > 1 else "")
              + f", {spec.algorithm} (seed {spec.seed}), scheduler {spec.scheduler_name}, objectives {objectives}"
              + (f", constraints {spec.constraints}" if spec.constraints else "") + instead, flush=True)
        summary = run_search(sweep, args.profile, plan, **common)
    else:
        cells = sweep.cells(args.profile, dataset=args.dataset, sets=_sets(args))
        print(f"sweep {sweep.name} ({sweep.path}), profile {args.profile}: {len(cells)} trials" + instead, flush=True)
        summary = run_sweep(sweep, args.profile, cells, rerun=args.rerun, **common)
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} cell(s) already recorded FINISHED (same config digest; "
              f"--rerun runs them again): {', '.join(summary.skipped)}")
    from .interrupt import STOPS

    summary.stop_reason = summary.stop_reason or STOPS.reason  # a signal while the summary was read back
    console.print_summary(summary)
    return sweep, artifacts, summary


def _run(args) -> int:
    from .interrupt import Interrupted

    try:
        _, _, summary = _run_sweep(args)
    except Interrupted as e:
        return console.stopped_early(e)
    console.print_ui_hint(summary.tracking_uri)
    return console.exit_code(summary)


EXPORT_FORMATS = ("parquet", "csv")  # harness.export writes either
REPORT_REASONS_SHOWN = 20  # runs a report lists by name and reason when none of a sweep's finished


def _report(args, sweep=None, artifacts=None) -> int:
    from harness_analysis.report import render

    from . import catalog, tracking
    from .runs import NO_STORE, load_runs

    targets = []
    if artifacts is not None:
        targets = list(sweep.artifacts)  # a reproduction renders everything its runs feed
    else:
        writable_folder("--out", args.out)
        ids = args.artifacts or list(catalog.all_artifacts())
        for target in ids:
            targets.extend(catalog.resolve(target)[1])
        for a in targets:
            catalog.report_function(a)
        uri = tracking.resolve_uri(args.tracking_uri)
        # a report never creates the store it reads; count tables (runs: false) read none
        if any(a.runs for a in targets) and not tracking.check_readable(uri):
            raise ConfigError("tracking_uri", uri, NO_STORE)
    out = Path(args.out)
    profile = getattr(args, "report_profile", None)
    written, unfinished = [], {}  # unfinished: sweep name -> its runs where it has runs but none FINISHED
    from .interrupt import STOPS

    for a in targets:
        if STOPS.reason:  # a reproduction stopped by a signal while it reported: what is written stays
            print(f"stopped by {STOPS.reason}: {a.id} and the artifacts after it not rendered")
            break
        paths = render(a, out, tracking_uri=args.tracking_uri, profile=profile)
        written.extend(paths)
        for p in paths:
            print(f"wrote {p}")
        if a.runs and not paths:
            name = catalog.resolve(a.sweep_file or a.sweep)[0].name
            frame = unfinished.get(name)
            frame = load_runs(a.sweep_file or a.id, args.tracking_uri, profile=profile) if frame is None else frame
            if not frame.empty and not (frame["status"] == "FINISHED").any():
                unfinished[name] = frame
    # a sweep whose every run failed is no sweep without runs: say why, and fail as the run did
    for name, frame in unfinished.items():
        print(f"nothing rendered from sweep {name}: {len(frame)} runs" + (f" at profile {profile}" if profile else "")
              + ", none FINISHED:")
        shown = frame.reindex(columns=["run_name", "status", "failure_reason"]).sort_values("run_name")
        for run_name, status, reason in shown.head(REPORT_REASONS_SHOWN).itertuples(index=False):
            reason = reason.strip() if isinstance(reason, str) and reason.strip() else "no failure_reason recorded"
            print(f"  {run_name} {status}: {reason.splitlines()[0][:300]}")
        if len(frame) > REPORT_REASONS_SHOWN:
            print(f"  … and {len(frame) - REPORT_REASONS_SHOWN} more")
    if unfinished:
        return 1
    if not written:
        print("nothing rendered: no recorded runs for these artifacts (run `harness run` first)")
    return 0


def _site(args) -> int:
    from . import site
    return site.main(args)


def _export(args) -> int:
    from . import export
    return export.main(args)


def _reproduce(args) -> int:
    from .interrupt import STOPS, Interrupted

    writable_folder("--out", args.out)  # before the sweep: its report must have somewhere to go
    try:
        sweep, artifacts, summary = _run_sweep(args)
    except Interrupted as e:
        return console.stopped_early(e)
    if not summary.interrupted and not summary.store_error and not STOPS.reason:  # an interrupted sweep is reported once --resume has finished it
        args.report_profile = args.profile
        _report(args, sweep, artifacts)
    console.print_ui_hint(summary.tracking_uri)
    return console.exit_code(summary)


def _numbers(key: str, text: str) -> list[float]:
    try:
        return [float(Fraction(t.strip())) for t in text.split(",")]
    except (ValueError, ZeroDivisionError):
        raise ConfigError(key, text, "comma-separated numbers, e.g. 0.8,1.0,0.8 (fractions such as 1/3 allowed)") from None


SAMPLING_FLAGS = {"sampler.alpha": "--alpha", "sampler.gamma": "--gamma", "sampler.se": "--se",
                  "sampler.internal": "--internal", "epochs": "--epochs", "batch": "--batch", "samples": "--samples"}


def _sampling(args) -> int:
    from .config import EPOCH_LIMIT
    from .methods import sampling

    for flag, value in (("--epochs", args.epochs), ("--internal", args.internal)):
        if value > EPOCH_LIMIT:  # the plan lists every epoch: a typo's billion would not fit in memory
            raise ConfigError(flag, value, f"an integer of at most {EPOCH_LIMIT}")
    alpha = _numbers("--alpha", args.alpha)
    gamma = _numbers("--gamma", args.gamma) if args.gamma else [1.0, 0.0, 0.0]
    if len(alpha) not in (1, 3):
        raise ConfigError("--alpha", args.alpha, "one ratio (flat) or three: alpha_1,alpha_21,alpha_3")
    try:
        plan = sampling.plan(args.epochs, alpha, gamma, args.se, args.internal, args.batch, args.samples).to_dict()
    except ConfigError as e:  # the planner names a config's keys; here they are this command's flags
        flag = SAMPLING_FLAGS.get(e.key.split("[")[0], e.key)
        raise ConfigError(flag, e.value, e.valid) from None
    plan["rounding"] = ("N_1 = round(gamma_1 N), N_3 = round(gamma_3 N) with halves up, N_2 = N - N_1 - N_3; "
                        "batches per epoch floor(alpha M), M = ceil(D / B)")
    if args.json:
        print(json.dumps(plan))
        return 0
    print(f"ratios per epoch ({args.epochs}): {', '.join(f'{r:g}' for r in plan['ratios'])}")
    print(f"stage epochs N1, N2, N3: {plan['stage_epochs']}")
    print(f"time_ratio (Corollary 2): {plan['time_ratio']:.4f}")
    print(f"miss_probability (Theorems 1/3): {plan['miss_probability']:.4e}")
    if plan["theorem4"]:
        t4 = plan["theorem4"]
        print(f"Theorem 4: M={t4['M']}, batches={t4['batches_total']}, T_B/T={t4['time_ratio']:.4f} "
              f"(bounds {t4['time_ratio_bounds'][0]:.4f}..{t4['time_ratio_bounds'][1]:.4f})")
    print(plan["rounding"])
    return 0


def _ui(args) -> int:
    from . import tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    if not 0 < args.port < 65536:
        raise ConfigError("--port", args.port, "a TCP port in 1..65535")
    try:  # mlflow's server would fail with a traceback on a busy port
        with socket.create_server((args.host, args.port)):
            pass
    except socket.gaierror as e:
        raise ConfigError("--host", args.host, f"an address of this machine ({e.strerror})") from None
    except OSError as e:
        raise ConfigError("--port", args.port, f"a free port on {args.host} ({e.strerror or e})") from None
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
           "--port", str(args.port)]
    # MLflow 3 opens experiments in its GenAI view; this parameter shows the training runs directly.
    print(f"MLflow UI for {uri} at http://{args.host}:{args.port}  (an experiment's runs: "
          f"http://{args.host}:{args.port}/#/experiments/<id>/runs?workflowType=machine_learning)", flush=True)
    # without MLflow's GenAI job runner (a runner and seven huey consumers) unless asked for: no sweep uses it
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(sys.executable, cmd)
    return 0


def _env(args) -> int:
    from . import environment

    env = environment.describe()
    print(json.dumps(env, indent=2) if args.json else environment.format_text(env))
    return 0


def _add_tracking(p):
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)")


def _add_run_args(p):
    p.add_argument("target", metavar="ARTIFACT|SWEEP_FILE")
    p.add_argument("--profile", default="quick", choices=list(PROFILES))
    p.add_argument("--dataset", default=None, help="run on another dataset (the report says so)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=3")
    p.add_argument("--address", default=None, help="Ray cluster address (default: in-process Ray on this machine)")
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--gpus-per-trial", type=float, default=0)
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    p.add_argument("--max-failures", type=int, default=1,
                   help="retries of a trial whose worker dies, from its last checkpoint (default 1)")
    p.add_argument("--resume", action="store_true", help="continue this sweep's last launch after its driver died")
    p.add_argument("--rerun", action="store_true", help="run cells again even if already recorded FINISHED")
    p.add_argument("--wait-for-resources", action="store_true",
                   help="on an autoscaling cluster: queue trials that no node can hold yet (default: refuse)")
    p.add_argument("--storage-path", default=None,
                   help="Tune state and checkpoints (default $HARNESS_RAY_RESULTS or ~/ray_results; shared on a cluster)")
    p.add_argument("--num-samples", type=int, default=None, help="a search's samples (overrides search.num_samples)")
    p.add_argument("--search-seed", type=int, default=None, help="a search's seed (overrides search.seed)")
    p.add_argument("--algorithm", default=None, help="a search's: random | tpe | nsga2 | optuna (overrides search.algorithm)")
    p.add_argument("--verbose", action="store_true", help="also Ray's and Tune's own output (per-checkpoint lines, ...)")
    _add_tracking(p)
    plugins.add_argument(p)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as for every other bad input (argparse adds the whole usage)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="harness", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="list registered models and their options")
    p.add_argument("--json", action="store_true")
    plugins.add_argument(p)
    p.set_defaults(fn=listing.models)
    p = sub.add_parser("profile", help="params, macs, flops of a model")
    p.add_argument("model")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--input", default=None, metavar="CxHxW")
    p.add_argument("--json", action="store_true")
    p.add_argument("--by-layer", action="store_true")
    plugins.add_argument(p)
    p.set_defaults(fn=_profile)
    p = sub.add_parser("list", help="the catalog of paper artifacts")
    p.add_argument("--json", action="store_true")
    p.add_argument("--paper", default=None, help="only this paper's artifacts")
    _add_tracking(p)
    plugins.add_argument(p)
    p.set_defaults(fn=listing.catalog)
    p = sub.add_parser("run", help="run an artifact's sweep with Ray Tune")
    _add_run_args(p)
    p.set_defaults(fn=_run)
    p = sub.add_parser("report", help="render artifacts from the recorded runs")
    p.add_argument("artifacts", nargs="*", metavar="ARTIFACT")
    p.add_argument("--out", default="reports")
    p.add_argument("--profile", dest="report_profile", default=None, choices=list(PROFILES))
    _add_tracking(p)
    plugins.add_argument(p)
    p.set_defaults(fn=_report)
    p = sub.add_parser("site", help="every artifact with runs, and the count tables, as a static HTML site")
    p.add_argument("--out", default="site")
    p.add_argument("--profile", dest="report_profile", default=None, choices=list(PROFILES))
    p.add_argument("--mlflow-url", default=None, help="the MLflow UI serving the store (each run links to it)")
    p.add_argument("--all", action="store_true", help="every artifact (the default; accepted for symmetry with export)")
    _add_tracking(p)
    plugins.add_argument(p)
    p.set_defaults(fn=_site)
    p = sub.add_parser("export", help="recorded runs, one row per (run, epoch), as Parquet or CSV")
    p.add_argument("target", nargs="?", default=None, metavar="ARTIFACT|SWEEP")
    p.add_argument("--all", action="store_true", help="every sweep's runs")
    p.add_argument("--out", required=True, metavar="FILE.parquet")
    p.add_argument("--format", default="parquet", choices=list(EXPORT_FORMATS))
    _add_tracking(p)
    plugins.add_argument(p)
    p.set_defaults(fn=_export)
    p = sub.add_parser("reproduce", help="run an artifact's sweep, then report")
    _add_run_args(p)
    p.add_argument("--out", default="reports")
    p.set_defaults(fn=_reproduce)
    p = sub.add_parser("sampling", help="plan reduced random sampling (Jiang Sec. 3.2)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--alpha", required=True, help="a (flat) or a1,a21,a3 (three-stage)")
    p.add_argument("--gamma", default=None, help="g1,g2,g3 summing to 1 (fractions such as 1/3 allowed)")
    p.add_argument("--se", type=float, default=1.0)
    p.add_argument("--internal", type=int, default=4)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_sampling)
    p = sub.add_parser("ui", help="serve the MLflow UI for the store on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    _add_tracking(p)
    p.set_defaults(fn=_ui)
    p = sub.add_parser("env", help="installed versions, the lock's digest, CUDA, cuDNN and driver")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_env)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):  # the console carries the harness's own lines
        import logging

        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported (and by workers)
        logging.getLogger("optuna").setLevel(logging.WARNING)
        # a store that fails is said in one line naming it (harness.interrupt); MLflow's own logger
        # would add a SQLAlchemy traceback for every write the driver then tries
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    from . import interrupt, tracking

    if args.command in ("run", "reproduce"):  # SIGINT and SIGTERM end a launch honestly from here on
        interrupt.STOPS.install()
    read_only = args.command in ("list", "report", "site", "export")  # these give up on a failing server in seconds
    try:
        with tracking.giving_up_quickly() if read_only else contextlib.nullcontext():
            plugins.from_cli(getattr(args, "plugins", None))  # before any sweep or registry is read
            code = args.fn(args)
            sys.stdout.flush()  # a reader gone (`harness list | head -n 1`) shows here, not at exit
            return code
    except (ConfigError, DatasetNotFound) as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    except interrupt.Interrupted as e:  # a signal while a launch's arguments were still being read
        return console.stopped_early(e)
    except KeyboardInterrupt:  # Ctrl-C in a command that only reads: nothing to close
        print("\nharness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the signal module docs' "Note on SIGPIPE": point stdout at devnull, or Python's own flush at
        # exit fails again and prints a traceback; 1, as a command that could not write its output
        with contextlib.suppress(OSError, ValueError):  # ValueError: a stdout with no file (captured)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
