"""Packing: 8 equal trials on 2 CPUs through harness.sweep.run_sweep against the ideal schedule.

Eight cells (seeds 0-7 of one ResNet-20 configuration on CIFAR-10-format random images in the
real pickle format) run with ``--cpus-per-trial 1`` on this machine's CPUs, so Ray Tune runs
``parallelism = cpus / cpus_per_trial`` of them at once. Each trial's time is its MLflow run's wall
time (created inside the trial, finished at its end: set-up, training, evaluation, checkpoints,
logging), measured in this same packed run. The ideal is ``sum(trial times) / parallelism + Ray
start``; the measured time is the whole ``run_sweep`` call (driver checks, Ray start, Tune,
every trial, the summary). Figure: measured / ideal, target <= 1.15. The gap is what Tune adds
between trials (worker start and imports for the first trials, scheduling, result handling).

GPU part (``--gpus-per-trial F``, on a machine with CUDA only): the same 8 trials at 1 GPU per
trial and at F per trial; the figure there is the trial throughput ratio, target >= 2x at 0.25.
Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, in_folder, loadavg, write_cifar10  # noqa: E402

import yaml  # noqa: E402


def make_sweep(folder: Path, data_root: Path, args, device: str):
    from harness.catalog import load_sweep

    config = {"data": {"dataset": "cifar10", "data_root": str(data_root), "val_size": 128},
              "model": {"name": "resnet20"},
              "train": {"epochs": args.epochs, "batch_size": 128, "lr": 0.05, "milestones": [args.epochs],
                        "device": device}}
    spec = {"name": f"bench_packing_{device}", "paper": "jiang", "artifacts": [], "base": config,
            "axes": {"train.seed": list(range(args.trials))}, "profiles": {"paper": {}, "quick": {}, "smoke": {}}}
    path = folder / f"bench_packing_{device}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_sweep(path)


def run_packed(sweep, store: str, storage: Path, cpus_per_trial: float, gpus_per_trial: float) -> dict:
    """One run_sweep; returns its wall time, Ray's start time and each trial's MLflow wall time."""
    import ray

    from harness import launcher, sweep as sweep_module, tracking

    stamps = {}
    init_ray = launcher.init_ray

    def timed_init_ray(address, **kwargs):
        stamps["ray_start"] = time.perf_counter()
        init_ray(address, **kwargs)
        stamps["ray_ready"] = time.perf_counter()

    launcher.init_ray = timed_init_ray
    cells = sweep.cells("paper")
    started_here = not ray.is_initialized()  # a caller's Ray (a test session's) is left running
    load_before = loadavg()
    start = time.perf_counter()
    try:
        summary = sweep_module.run_sweep(sweep, "paper", cells, cpus_per_trial=cpus_per_trial,
                                         gpus_per_trial=gpus_per_trial, tracking_uri=store, progress=False,
                                         storage_path=str(storage))
    finally:
        launcher.init_ray = init_ray
    wall_s = time.perf_counter() - start
    load = {"before": load_before, "after": loadavg()}
    if started_here:
        ray.shutdown()
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} trial(s) failed: {summary.failed[0].error}")
    client = tracking.client(store)
    exp = client.get_experiment_by_name(sweep.name)
    runs = client.search_runs([exp.experiment_id])
    trial_s = sorted((r.info.end_time - r.info.start_time) / 1000 for r in runs)
    return {"wall_s": wall_s, "ray_start_s": stamps["ray_ready"] - stamps["ray_start"],
            "driver_checks_s": stamps["ray_start"] - start, "trial_s": trial_s, "load": load}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--train-images", type=int, default=1152, help="per trial, 128 of them held out as val")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cpus-per-trial", type=float, default=1)
    ap.add_argument("--gpus-per-trial", type=float, default=None,
                    help="also run the GPU part at this fraction (needs CUDA), e.g. 0.25")
    ap.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not the figure")
    args = ap.parse_args(argv)
    if args.quick:
        args.trials, args.train_images, args.epochs = 2, 160, 1
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import torch

    from harness import tracking

    cpus = os.cpu_count() or 1
    parallelism = min(args.trials, int(cpus / args.cpus_per_trial))
    with tempfile.TemporaryDirectory() as tmp, in_folder(tmp):  # MLflow writes run artifacts to ./mlruns
        tmp = Path(tmp)
        root = write_cifar10(tmp / "data", args.train_images, 128)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        tracking.check_reachable(store)  # the store's schema, created once per store: untimed
        cpu = run_packed(make_sweep(tmp, root, args, "cpu"), store, tmp / "ray", args.cpus_per_trial, 0)
        gpu: dict = {"status": "not measured: no GPU lent to this task (target: >= 2x trial throughput at "
                               "--gpus-per-trial 0.25 against 1 GPU per trial, ResNet-20-sized trials)"}
        if args.gpus_per_trial is not None and torch.cuda.is_available():
            # Not yet run on a GPU by the author of this script: its first run there checks it.
            sweep = make_sweep(tmp, root, args, "cuda")
            whole = run_packed(sweep, store, tmp / "ray_whole", 1, 1.0)
            store2 = f"sqlite:///{tmp / 'mlflow2.db'}"
            tracking.check_reachable(store2)
            packed = run_packed(sweep, store2, tmp / "ray_packed", 1, args.gpus_per_trial)
            gpu = {"status": "measured", "gpus_per_trial": args.gpus_per_trial,
                   "throughput_ratio": round(whole["wall_s"] / packed["wall_s"], 2), "target": 2.0,
                   "one_gpu_per_trial": whole, "packed": packed}
        elif args.gpus_per_trial is not None:
            gpu["status"] = "not measured: --gpus-per-trial given but no CUDA device here"

    ideal_s = sum(cpu["trial_s"]) / parallelism + cpu["ray_start_s"]
    ratio = cpu["wall_s"] / ideal_s
    return emit("packed_over_ideal_ratio", round(ratio, 3), 1.15, "lower",
                wall_s=round(cpu["wall_s"], 2), ideal_s=round(ideal_s, 2), parallelism=parallelism,
                ray_start_s=round(cpu["ray_start_s"], 2), driver_checks_s=round(cpu["driver_checks_s"], 2),
                trial_s=[round(t, 2) for t in cpu["trial_s"]], sum_trial_s=round(sum(cpu["trial_s"]), 2),
                ratio_without_driver_checks=round((cpu["wall_s"] - cpu["driver_checks_s"]) / ideal_s, 3),
                setup={"trials": args.trials, "model": "resnet20", "train_images": args.train_images - 128,
                       "epochs": args.epochs, "cpus_per_trial": args.cpus_per_trial, "cpus": cpus},
                gpu=gpu, load={"packed_cpu": cpu["load"]})


if __name__ == "__main__":
    main()
