"""``harness site --all`` over a store of N runs (issue 26, part 3: 5,000 runs within a few minutes on 2 cores).

Fills a SQLite store in a temporary folder with N SYNTHETIC runs of the jiang_table_4_9 sweep, written as a
trial writes them (bulk_reads.write_runs: MlflowClient create_run + log_batch, the paper cells' configs as
params and config.yaml, 17 per-epoch metrics for --epochs epochs, 11 final ones), every run tagged
``synthetic=true`` (the site's environment table shows the tag), so no reader can take them for results.
Then times, in this process with ``time.perf_counter``:
  * ``load_runs`` of the sweep, cold (an empty $HARNESS_CACHE): the bulk read the site makes once per sweep;
  * ``harness site --all --out DIR`` (``harness.cli.main``) with a new empty cache, as a first site finds it.
The count tables (runs: false) are built from the models on every site whatever N is (their builders
profile models on the meta device: most of a site's time on a small store); their seconds are in the figure.

  python benchmarks/site_scale.py --runs 1000 [--epochs 10]
Ends with one JSON line (benchmarks/common.py ``emit``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk_reads import SWEEP, templates, write_runs  # noqa: E402
from common import emit, in_folder, loadavg  # noqa: E402

TARGET_S = 300  # "within a few minutes on 2 cores" for 5,000 runs


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--writers", type=int, default=2, help="threads writing runs (SQLite: few)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, in_folder(tmp):
        tmp = Path(tmp)
        os.environ["HARNESS_CACHE"] = str(tmp / "cache-cold-1")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        from harness import cli, runs, tracking

        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        sweep, cells = templates()
        experiment_id = tracking.client(uri).create_experiment(sweep.name)
        load = {"write": {"before": loadavg()}}
        write_s = write_runs(uri, experiment_id, sweep, cells, 0, args.runs, args.epochs,
                             extra_tags={"synthetic": "true"}, writers=args.writers)
        load["write"]["after"] = loadavg()
        load["load_runs"] = {"before": load["write"]["after"]}
        print(f"wrote {args.runs} synthetic runs in {write_s:.1f} s", file=sys.stderr, flush=True)
        start = time.perf_counter()
        frame = runs.load_runs(SWEEP, uri, status="FINISHED")
        load_cold_s = time.perf_counter() - start
        load["load_runs"]["after"] = loadavg()
        load["site"] = {"before": load["load_runs"]["after"]}
        print(f"load_runs, cold: {load_cold_s:.2f} s", file=sys.stderr, flush=True)
        assert len(frame) == args.runs and (frame["synthetic"] == "true").all()
        os.environ["HARNESS_CACHE"] = str(tmp / "cache-cold-2")
        start = time.perf_counter()
        assert cli.main(["site", "--all", "--tracking-uri", uri, "--out", str(tmp / "site")]) == 0
        site_s = time.perf_counter() - start
        load["site"]["after"] = loadavg()
        print(f"harness site --all: {site_s:.1f} s", file=sys.stderr, flush=True)
        page = (tmp / "site" / "jiang-table-4-9.html").read_text()
        assert f"{args.runs} finished runs" in page and "synthetic" in page
        pages = len(list((tmp / "site").glob("*.html")))
    return emit("site_all_s", round(site_s, 1), TARGET_S, "lower", runs=args.runs, epochs=args.epochs,
                write_s=round(write_s, 1), load_runs_cold_s=round(load_cold_s, 2), pages=pages, load=load)


if __name__ == "__main__":
    main()
