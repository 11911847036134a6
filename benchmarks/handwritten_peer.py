"""The harness against the Ray Tune script a user would write instead: the demo's grid, side by side.

The grid is the README demo's (``harness reproduce jiang-table-4-9 --profile quick --dataset digits
--set model.name=resnet20``; the Makefile's ``demo`` line): Jiang's Table 4-9 rows (full sampling,
flat 0.8 and 0.618, the three-stage R2, R2_1 and R3) x seeds 0, 1, 2 = 18 trials of ResNet-20 on
scikit-learn's digits, 15 epochs, batch 32, SGD (lr 0.1, momentum 0.9, weight decay 1e-4) with the
lr x0.1 at epochs 8 and 12. It runs as three processes one after the other, each fresh and timed
from its start to its exit (each pays a Python start, its imports and a Ray start), in
``--repeats`` rounds (default 2) of harness, hand-written, hand-written with actor reuse:

  * harness: ``harness run jiang-table-4-9 --profile quick --dataset digits --set model.name=resnet20``
    with its own temporary SQLite store and Tune storage path, as a user runs it (``run``, not
    ``reproduce``: the report rendering is not part of the comparison);
  * hand-written (this file with ``--peer``): ``tune.Tuner`` over ``tune.grid_search`` of the same
    rows and seeds with Tune's defaults (1 CPU per trial, no actor reuse, Ray started by Tune), a
    function trainable with a plain PyTorch loop (a ``torch.utils.data.DataLoader`` over
    ``sklearn.datasets.load_digits``, split with ``train_test_split`` into the same sizes: 20 %
    test, 300 validation images, the quick profile's subsets; the same optimizer, schedule, batch
    size, epochs, seeds, channels-last layout and one torch thread per trial; val and test evaluated
    every epoch, as the harness does) and Tune's own ``ray.air.integrations.mlflow.MLflowLoggerCallback``
    tracking into its own temporary SQLite store. Only two pure pieces come from the harness:
    ``harness.models.build("resnet20", ...)`` (the model definition) and, for the rows that subsample
    each epoch, ``harness.methods.sampling.schedule_from_config`` / ``batches_per_epoch`` (the
    per-epoch ratio and batch count; the loop takes that many batches of a fresh shuffle itself).
    No harness orchestration, data loading or tracking. The grid's settings are read from the
    harness's resolved cells (``catalog.resolve("jiang-table-4-9")[0].cells("quick", dataset="digits",
    sets=["model.name=resnet20"])``) by this script's parent process and handed to the peer as a JSON
    file, so both sides train the same configurations; a user would type them in.
  * hand-written with ``TuneConfig(reuse_actors=True)`` (the harness sets it; Tune's default is
    off): the same script for a user who knows that a new worker process per trial costs its start
    and imports. Reported beside the figure, not as it.

The two sides do not train on the same images: each draws its own split of the same sizes (the
harness its seeded permutation, the peer sklearn's), so the test sets differ too. "Within noise" is
judged per row: |mean_harness - mean_peer| of the last epoch's test_acc <= 2 standard errors of the
difference, sqrt(s_h^2 / n + s_p^2 / n) with s the std over the n seeds. The images trained per
trial are compared exactly (the ``batches`` each epoch logs, summed).

Figure: harness wall time / hand-written wall time (Tune's defaults), means over the rounds, target
<= 1.0. Accuracies are compared on the first round (both sides repeat themselves exactly on CPU:
``same_results_every_round``). ``--quick``: 2 rows x 1 seed, 1 epoch, one round (checks the script,
not the figure). Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, emit, harness_source, in_folder, loadavg  # noqa: E402

ARTIFACT = "jiang-table-4-9"
PROFILE = "quick"
DATASET = "digits"
SETS = ["model.name=resnet20"]
PEER_EXPERIMENT = "handwritten_peer"


# ---- the hand-written peer (runs in its own process: this file with --peer) ----

def peer_trainable(config: dict) -> None:
    """One trial as a user writes it: plain PyTorch, the digits from scikit-learn, results to Tune."""
    import itertools
    import random
    from types import SimpleNamespace

    import numpy as np
    import torch
    import torch.nn.functional as F
    from ray import tune
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch.utils.data import DataLoader, TensorDataset

    from harness.methods.sampling import batches_per_epoch, schedule_from_config
    from harness.models import build

    torch.set_num_threads(config["threads"])
    seed = config["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel counts 0..16
    labels = torch.tensor(digits.target, dtype=torch.long)
    rest, test_idx = train_test_split(np.arange(len(labels)), test_size=config["test_fraction"], random_state=0)
    train_idx, val_idx = train_test_split(rest, test_size=config["val_size"], random_state=config["split_seed"])
    train_idx, test_idx = train_idx[:config["train_subset"]], test_idx[:config["test_subset"]]
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std

    def loader(idx, batch_size, shuffle):
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(TensorDataset(images[idx], labels[idx]), batch_size=batch_size, shuffle=shuffle,
                          generator=generator)

    memory_format = torch.channels_last if config["channels_last"] else torch.contiguous_format
    train_loader = loader(train_idx, config["batch_size"], True)
    eval_batch = max(config["batch_size"], 512)
    val_loader, test_loader = loader(val_idx, eval_batch, False), loader(test_idx, eval_batch, False)
    model = build(config["model"], num_classes=10, in_channels=1, image_size=8).to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"], nesterov=config["nesterov"])
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, config["milestones"], gamma=config["lr_decay"])
    ratios = schedule_from_config(SimpleNamespace(**config["row"]["sampler"]), config["epochs"])

    @torch.no_grad()
    def accuracy(data) -> float:
        model.eval()
        correct = sum((model(x.contiguous(memory_format=memory_format)).argmax(1) == y).sum().item() for x, y in data)
        return 100.0 * correct / len(data.dataset)

    for epoch in range(1, config["epochs"] + 1):
        n_batches = batches_per_epoch(ratios[epoch - 1], len(train_loader))
        model.train()
        start = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for x, y in itertools.islice(train_loader, n_batches):  # the first n batches of a fresh shuffle
            loss = F.cross_entropy(model(x.contiguous(memory_format=memory_format)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
        epoch_time_s = time.perf_counter() - start
        schedule.step()
        tune.report({"epoch": epoch, "train_loss": loss_sum / seen, "val_acc": accuracy(val_loader),
                     "test_acc": accuracy(test_loader), "epoch_time_s": epoch_time_s, "batches": n_batches,
                     "sampling_ratio": ratios[epoch - 1]})


def run_peer(grid_file: Path, store: str, storage: Path, reuse_actors: bool) -> int:
    stamps = {"start": time.time()}
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    grid = json.loads(grid_file.read_text())
    stamps["imported"] = time.time()
    tuner = tune.Tuner(
        peer_trainable,
        param_space={**grid["shared"], "row": tune.grid_search(grid["rows"]), "seed": tune.grid_search(grid["seeds"])},
        tune_config=tune.TuneConfig(reuse_actors=reuse_actors),  # Tune's default: False
        run_config=tune.RunConfig(
            name=PEER_EXPERIMENT, storage_path=str(storage),
            callbacks=[MLflowLoggerCallback(tracking_uri=store, experiment_name=PEER_EXPERIMENT)]))
    results = tuner.fit()
    stamps["fitted"] = time.time()
    print("PEER " + json.dumps({"stamps": stamps, "errors": [str(e).splitlines()[0] for e in results.errors]}),
          flush=True)
    return 1 if results.errors else 0


# ---- the parent: the grid, the two timed processes, the comparison ----

def resolve_cells(quick: bool, folder: Path):
    """The demo's cells, and the `harness run` target that runs exactly them (a trimmed sweep file
    in --quick: 2 rows x 1 seed, 1 epoch)."""
    import yaml

    from harness import catalog

    sweep = catalog.resolve(ARTIFACT)[0]
    if not quick:
        return sweep.cells(PROFILE, dataset=DATASET, sets=SETS), ARTIFACT, sweep.name
    spec = yaml.safe_load(sweep.path.read_text())
    quick_profile = spec["profiles"][PROFILE]
    quick_profile["rows"] = [r["label"] for r in spec["rows"][:2]]
    quick_profile["axes"] = {"train.seed": [0]}
    quick_profile["config"]["train"].update(epochs=1, milestones=[1])
    path = folder / sweep.path.name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return catalog.load_sweep(path).cells(PROFILE, dataset=DATASET, sets=SETS), str(path), sweep.name


def grid_of(cells) -> dict:
    """Rows, seeds and the settings every cell shares, as plain data for the peer."""
    first = cells[0].config
    d, t = first["data"], first["train"]
    for c in cells:  # the peer trains one protocol: only the sampler and the seed vary
        other = json.loads(json.dumps(c.config))
        other["sampler"], other["train"]["seed"] = first["sampler"], t["seed"]
        assert other == first, f"{c.name} differs from {cells[0].name} beyond its sampler and seed"
    assert first["method"]["name"] == "none" and t["schedule"] == "multistep" and t["warmup_epochs"] == 0
    assert d["dataset"] == DATASET and not d["classes"] and not d["image_size"]
    rows, seeds = [], []
    for c in cells:
        if c.row not in [r["label"] for r in rows]:
            rows.append({"label": c.row, "sampler": c.config["sampler"]})
        if c.config["train"]["seed"] not in seeds:
            seeds.append(c.config["train"]["seed"])
    from harness.data.datasets import DIGITS_TEST_FRACTION

    shared = {"model": first["model"]["name"], "epochs": t["epochs"], "batch_size": t["batch_size"], "lr": t["lr"],
              "momentum": t["momentum"], "weight_decay": t["weight_decay"], "nesterov": t["nesterov"],
              "milestones": list(t["milestones"]), "lr_decay": t["lr_decay"], "channels_last": t["channels_last"],
              "threads": 1, "val_size": int(d["val_size"]), "split_seed": d["split_seed"],
              "train_subset": d["train_subset"], "test_subset": d["test_subset"], "test_fraction": DIGITS_TEST_FRACTION}
    # digits augments nothing (no crop padding, no flip: its DatasetInfo), so neither side does
    return {"rows": rows, "seeds": seeds, "shared": shared}


def timed(cmd: list[str], folder: Path, log: Path) -> dict:
    load_before = loadavg()
    start = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT).returncode
    wall_s = time.perf_counter() - start
    text = log.read_text()
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {rc}:\n{text[-3000:]}")
    return {"wall_s": wall_s, "rc": rc, "load": {"before": load_before, "after": loadavg()}, "output": text}


def read_trials(store: str, experiment: str, row_of, seed_of) -> list[dict]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    out = []
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        history = client.get_metric_history(r.info.run_id, "batches")
        out.append({"row": row_of(r), "seed": seed_of(r), "status": r.info.status,
                    "test_acc": r.data.metrics.get("test_acc"), "val_acc": r.data.metrics.get("val_acc"),
                    "epochs": len(history), "batches": int(sum(m.value for m in history)),
                    "run_wall_s": round((r.info.end_time - r.info.start_time) / 1000, 3)})
    return sorted(out, key=lambda t: (t["row"], t["seed"]))


def compare(rows: list[str], harness: list[dict], peer: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        h = [t["test_acc"] for t in harness if t["row"] == row]
        p = [t["test_acc"] for t in peer if t["row"] == row]
        n = min(len(h), len(p))
        sh = statistics.stdev(h) if len(h) > 1 else math.nan
        sp = statistics.stdev(p) if len(p) > 1 else math.nan
        diff = statistics.mean(h) - statistics.mean(p)
        se = math.sqrt(sh ** 2 / len(h) + sp ** 2 / len(p)) if n > 1 else math.nan
        out.append({"row": row, "seeds": n, "harness_mean": round(statistics.mean(h), 2), "harness_std": round(sh, 2),
                    "peer_mean": round(statistics.mean(p), 2), "peer_std": round(sp, 2), "diff": round(diff, 2),
                    "se_diff": round(se, 2), "within_noise": (abs(diff) <= 2 * se) if n > 1 else None,
                    "batches_harness": sum(t["batches"] for t in harness if t["row"] == row),
                    "batches_peer": sum(t["batches"] for t in peer if t["row"] == row)})
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 rows x 1 seed, 1 epoch: checks the script, not the figure")
    ap.add_argument("--repeats", type=int, default=2,
                    help="rounds of (harness, hand-written, hand-written with reuse_actors); --quick: 1")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--reuse-actors", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--grid", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--storage", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peer:
        sys.exit(run_peer(Path(args.grid), args.store, Path(args.storage), args.reuse_actors))
    if args.quick:
        args.repeats = 1
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # as the harness sets it for itself; every child gets it
    source = harness_source()

    harness_cli = Path(PYTHON).parent / "harness"
    sides = ("harness", "peer", "peer_reuse_actors")
    walls = {side: [] for side in sides}
    loads, stamps, summaries, trials = {}, {}, [], {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp, in_folder(tmp):  # MLflow writes run artifacts to ./mlruns
        tmp = Path(tmp)
        cells, target, experiment = resolve_cells(args.quick, tmp)
        grid = grid_of(cells)
        (tmp / "grid.json").write_text(json.dumps(grid))
        for i in range(1, args.repeats + 1):
            for side in sides:  # every process gets a fresh store, storage path and working folder
                where = tmp / f"{side}_{i}"
                where.mkdir()
                store = f"sqlite:///{where / 'mlflow.db'}"
                if side == "harness":
                    cmd = [str(harness_cli), "run", target, "--profile", PROFILE, "--dataset", DATASET,
                           *[a for s in SETS for a in ("--set", s)], "--tracking-uri", store,
                           "--storage-path", str(where / "ray")]
                else:
                    cmd = [PYTHON, str(Path(__file__).resolve()), "--peer", "--grid", str(tmp / "grid.json"),
                           "--store", store, "--storage", str(where / "ray")]
                    cmd += ["--reuse-actors"] if side == "peer_reuse_actors" else []
                done = timed(cmd, where, where / "output.log")
                walls[side].append(round(done["wall_s"], 2))
                loads[f"{side}_{i}"] = done["load"]
                if side == "harness":
                    summaries.append(next((line.strip() for line in done["output"].splitlines()
                                           if line.startswith("summary of")), ""))
                    trials[side].append(read_trials(store, experiment, lambda r: r.data.tags["row"],
                                                    lambda r: int(r.data.tags["seed"])))
                else:
                    line = next(json.loads(x[5:]) for x in done["output"].splitlines() if x.startswith("PEER "))
                    s = line["stamps"]
                    stamps[f"{side}_{i}"] = {"imports_s": round(s["imported"] - s["start"], 2),
                                             "fit_s": round(s["fitted"] - s["imported"], 2)}
                    trials[side].append(read_trials(store, PEER_EXPERIMENT, lambda r: r.data.params["row/label"],
                                                    lambda r: int(r.data.params["seed"])))
                got = trials[side][-1]
                if len(got) != len(cells) or any(t["status"] != "FINISHED" for t in got):
                    raise RuntimeError(f"{side} round {i}: {len(got)} runs for {len(cells)} cells, statuses "
                                       f"{sorted({t['status'] for t in got})}")
    rows = [r["label"] for r in grid["rows"]]
    by_row = compare(rows, trials["harness"][0], trials["peer"][0])
    mean = {side: statistics.mean(walls[side]) for side in sides}
    ratio = mean["harness"] / mean["peer"]
    judged = [r for r in by_row if r["within_noise"] is not None]

    def accuracies(runs):
        return [(t["row"], t["seed"], t["test_acc"]) for t in runs]

    return emit("harness_over_handwritten_wall_ratio", round(ratio, 3), 1.0, "lower",
                wall_s=walls, mean_wall_s={k: round(v, 2) for k, v in mean.items()},
                ratio_vs_peer_reuse_actors=round(mean["harness"] / mean["peer_reuse_actors"], 3),
                harness_summary_lines=summaries, peer_timeline_s=stamps,
                sum_trial_run_wall_s={side: [round(sum(t["run_wall_s"] for t in r), 2) for r in trials[side]]
                                      for side in sides},
                rows_within_noise=(f"{sum(r['within_noise'] for r in judged)}/{len(judged)}" if judged
                                   else "not judged (1 seed)"),
                same_batches=all(r["batches_harness"] == r["batches_peer"] for r in by_row),
                same_results_every_round={side: all(accuracies(r) == accuracies(trials[side][0]) for r in trials[side])
                                          for side in sides},
                by_row=by_row, trials={"harness": trials["harness"][0], "peer": trials["peer"][0]},
                setup={"cells": len(cells), "rows": rows, "seeds": grid["seeds"], "repeats": args.repeats,
                       "order": "each round: " + ", ".join(sides), **grid["shared"],
                       "harness_command": f"harness run {ARTIFACT if not args.quick else '<trimmed sweep file>'} "
                                          f"--profile {PROFILE} --dataset {DATASET} --set {SETS[0]}",
                       "cpus": os.cpu_count()},
                harness_source=source, load=loads)


if __name__ == "__main__":
    main()
