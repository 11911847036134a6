"""Scaling on paper: GPU-hours and wall time of every sweep's full ``paper`` grid on 1, 8 and 64 GPUs.

An estimate, not a measurement; its assumptions:
  * cells: ``harness.catalog.all_sweeps()``, ``sweep.cells("paper")`` (every row x axis point); a search
    sweep (cross_paper_pareto) has no grid and is listed as not estimated;
  * one trial per GPU (no packing), trials independent, scheduled longest first onto N GPUs
    (the makespan of that greedy schedule is the wall time, never below the longest trial);
  * GPU time per epoch from the papers' own reported epochs (no GPU was lent to measure ours):
    Jiang: ResNet-56 CIFAR-10 42 min 47 s / 120 epochs = 21.4 s on two Quadro RTX 5000, counted
    as 42.8 GPU-seconds; Zheng: AlexNet Fashion-MNIST 17 s, VGG-16 CIFAR-10 26 s, ResNet-32
    CIFAR-100 54 s, each on one RTX 2080 Ti. A cell whose (model, dataset) is one of these uses
    its time scaled by the cell's training images per epoch; any other cell uses the training
    MACs rate (3 x forward MACs per image: forward + backward) of the reported workload nearest
    in forward MACs per image (log scale), times its own MACs and images;
  * an epoch's images: the dataset's training split less the validation hold-out, capped by
    ``train_subset``, times the sampler's mean ratio (Jiang's reduced sampling); a training method
    that trains several models or prunes (Zheng's chains, Calli's) is counted as the full model
    every epoch; evaluation is not counted (a pass over val + test without backward);
  * harness cost per trial and per sweep from overhead.py (``--trial-overhead-s``, ``--sweep-overhead-s``).
Prints a Markdown table and ends with one JSON line.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402

TRAIN_IMAGES = {"cifar10": 50000, "cifar100": 50000, "mnist": 60000, "fashion_mnist": 60000,
                "digits": 1797 - math.ceil(0.2 * 1797), "oxford_pet": 3680, "imagenet": 1281167}
CLASSES = {"cifar10": 10, "cifar100": 100, "mnist": 10, "fashion_mnist": 10, "digits": 10, "oxford_pet": 37,
           "imagenet": 1000}
SHAPE = {"cifar10": (3, 32), "cifar100": (3, 32), "mnist": (1, 28), "fashion_mnist": (1, 28), "digits": (1, 8),
         "oxford_pet": (3, 224), "imagenet": (3, 224)}
# (model, dataset): (GPU-seconds per epoch, training images per epoch, source)
REPORTED = {("resnet56", "cifar10"): (2 * 2567 / 120, 50000, "Jiang: 42:47 for 120 epochs on 2 Quadro RTX 5000"),
            ("alexnet_fmnist", "fashion_mnist"): (17.0, 60000, "Zheng: 17 s/epoch, RTX 2080 Ti"),
            ("vgg16", "cifar10"): (26.0, 50000, "Zheng: 26 s/epoch, RTX 2080 Ti"),
            ("resnet32", "cifar100"): (54.0, 50000, "Zheng: 54 s/epoch, RTX 2080 Ti")}


def forward_macs(model: str, options: dict, dataset: str, image_size, cache: dict) -> int:
    channels, size = SHAPE[dataset]
    size = image_size or size
    key = (model, json.dumps(options, sort_keys=True), channels, size)
    if key not in cache:
        from harness.measure import profile_model

        try:
            options = {"num_classes": CLASSES[dataset], **options}
            cache[key] = profile_model(model, options, (channels, size, size))["macs"]
        except Exception as e:  # a model that cannot be profiled at this shape: its sweep is reported unestimated
            cache[key] = e
    if isinstance(cache[key], Exception):
        raise cache[key]
    return cache[key]


def epoch_images(cfg: dict) -> float:
    from harness.config import RunConfig
    from harness.methods import sampling

    d = cfg["data"]
    total = TRAIN_IMAGES[d["dataset"]]
    val = d["val_size"] if d["val_size"] >= 1 else round(d["val_size"] * total)
    images = total - val
    if d.get("train_subset"):
        images = min(images, d["train_subset"])
    ratios = sampling.schedule_from_config(RunConfig.from_dict(cfg).sampler, cfg["train"]["epochs"])
    return images * sampling.time_ratio(ratios)


def makespan(durations: list[float], gpus: int) -> float:
    """Longest-first greedy assignment of independent trials to ``gpus`` GPUs: the finish time."""
    loads = [0.0] * gpus
    heapq.heapify(loads)
    for d in sorted(durations, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + d)
    return max(loads)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", default="1,8,64")
    ap.add_argument("--trial-overhead-s", type=float, default=10.0,
                    help="per trial: worker start, set-up, checkpoints, logging (overhead.py)")
    ap.add_argument("--sweep-overhead-s", type=float, default=25.0, help="per sweep: Ray start, driver, exit")
    ap.add_argument("--quick", action="store_true", help="only the first two sweeps (checks the script)")
    args = ap.parse_args(argv)
    gpus = [int(g) for g in args.gpus.split(",")]

    from harness import catalog
    rates = {}  # training MACs per GPU-second of each reported workload
    macs_cache: dict = {}
    for (model, dataset), (seconds, images, _) in REPORTED.items():
        macs = forward_macs(model, {}, dataset, None, macs_cache)
        rates[(model, dataset)] = (macs, 3 * macs * images / seconds)
    sweeps = catalog.all_sweeps()
    rows, total_gpu_s, every_cell = [], 0.0, []
    for name in list(sweeps)[:2] if args.quick else sweeps:
        sweep = sweeps[name]
        if sweep.is_search:  # no grid: its cost is num_samples trials of what the searcher draws, not estimated
            rows.append({"sweep": name, "cells": 0, "not_estimated": "a search sweep (samples, not a grid)"})
            continue
        durations, basis, failed = [], set(), ""
        for cell in sweep.cells("paper"):
            cfg = cell.config
            model, dataset = cfg["model"]["name"], cfg["data"]["dataset"]
            images = epoch_images(cfg)
            if (model, dataset) in REPORTED and not cfg["model"]["options"]:
                seconds, reported_images, _ = REPORTED[(model, dataset)]
                per_epoch = seconds * images / reported_images
                basis.add(f"{model}/{dataset}: reported")
            else:
                try:
                    macs = forward_macs(model, cfg["model"]["options"], dataset, cfg["data"].get("image_size"),
                                        macs_cache)
                except Exception as e:
                    failed = f"{model}/{dataset} {cfg['model']['options']}: cannot count MACs ({str(e)[:120]})"
                    break
                near = min(rates, key=lambda k: abs(math.log(max(macs, 1) / rates[k][0])))
                per_epoch = 3 * macs * images / rates[near][1]
                basis.add(f"{model}/{dataset}: MACs x rate of {near[0]}/{near[1]}")
            durations.append(per_epoch * cfg["train"]["epochs"] + args.trial_overhead_s)
        if failed:
            rows.append({"sweep": name, "cells": len(sweep.cells("paper")), "not_estimated": failed})
            continue
        every_cell.extend(durations)
        gpu_s = sum(durations)
        total_gpu_s += gpu_s
        rows.append({"sweep": name, "cells": len(durations), "gpu_hours": round(gpu_s / 3600, 1),
                     "longest_trial_h": round(max(durations) / 3600, 2),
                     **{f"wall_h_{g}gpu": round((makespan(durations, g) + args.sweep_overhead_s) / 3600, 2)
                        for g in gpus},
                     "basis": sorted(basis)})
    print("| sweep | cells | GPU-hours | longest trial (h) | "
          + " | ".join(f"wall on {g} GPU (h)" for g in gpus) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(gpus))
    for r in rows:
        if "not_estimated" in r:
            print(f"| {r['sweep']} | {r['cells']} | not estimated: {r['not_estimated']} |")
            continue
        print(f"| {r['sweep']} | {r['cells']} | {r['gpu_hours']} | {r['longest_trial_h']} | "
              + " | ".join(str(r[f'wall_h_{g}gpu']) for g in gpus) + " |")
    totals = {f"wall_h_{g}gpu_sweeps_in_turn": round(sum(r.get(f"wall_h_{g}gpu", 0) for r in rows), 1) for g in gpus}
    # every estimated cell in one queue (one launch, or sweeps launched side by side on one cluster)
    totals.update({f"wall_h_{g}gpu_one_queue": round((makespan(every_cell, g) + args.sweep_overhead_s) / 3600, 1)
                   for g in gpus})
    estimated_cells = sum(r["cells"] for r in rows if "gpu_hours" in r)
    print(f"| **all estimated, sweeps in turn** | {estimated_cells} | {round(total_gpu_s / 3600, 1)} | | "
          + " | ".join(str(totals[f'wall_h_{g}gpu_sweeps_in_turn']) for g in gpus) + " |")
    print("| **all estimated, one queue** | | | | "
          + " | ".join(str(totals[f'wall_h_{g}gpu_one_queue']) for g in gpus) + " |")
    return emit("paper_grids_gpu_hours_estimated", round(total_gpu_s / 3600, 1), "an estimate, no target", "lower",
                sweeps=rows, totals=totals,
                reported_rates_tmacs_per_gpu_s={f"{m}/{d}": round(r / 1e12, 3) for (m, d), (_, r) in rates.items()},
                assumptions="see the docstring of benchmarks/scaling.py", load={})


if __name__ == "__main__":
    main()
