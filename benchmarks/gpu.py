"""GPU speed: training-epoch time of ResNet-56 (CIFAR-10, batch 128) and AlexNet (Fashion-MNIST)
under the speed switches, against the papers' epochs.

Switches: ``train.channels_last`` and ``train.precision`` (bf16 on CUDA) are TrainConfig switches and go
through harness.train.Trainer as a trial would use them. ``torch.compile`` is not a TrainConfig
switch yet: with ``--compile`` this script wraps the Trainer's model in ``torch.compile`` itself
(default mode) and says so in its output.

Each setting trains 2 epochs of ``--steps`` batches with the Trainer (the first warms up: cuDNN
autotuning, compilation, allocator) and reads the second epoch's ``epoch_time_s`` (batching and
augmenting on the device, forward, backward, step, ended by a synchronize). The full epoch is
extrapolated from it as ``epoch_images / images_per_s`` (50,000 images for CIFAR-10 as the paper
trains them, 60,000 for Fashion-MNIST) and labelled so. ResNet-56 runs on CIFAR-shaped random
images (written in the real CIFAR-10 pickle format; timing needs no real pixels); AlexNet on the
real Fashion-MNIST, with each setting's test accuracy after its steps beside it (the switches
should not change it beyond bf16 rounding). ``--quick``, and a machine without Fashion-MNIST
(Debian's dataset-fashion-mnist, `make datasets`), time AlexNet on random images in the real idx
format instead; the output's ``fashion_mnist_source`` says which it was.

Targets, on an H100: ResNet-56 epoch <= 3 s (Jiang: 42 min 47 s / 120 epochs = 21.4 s on two
Quadro RTX 5000), AlexNet Fashion-MNIST epoch <= 1.5 s (Zheng: 17 s on an RTX 2080 Ti). Without
CUDA the script runs the same on the CPU, reports CPU numbers labelled as such, and marks the GPU
targets "not measured". Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, loadavg, write_cifar10, write_fashion_mnist  # noqa: E402

PAPER_EPOCH_S = {"resnet56_cifar10": 2567 / 120, "alexnet_fashion_mnist": 17.0}
TARGET_EPOCH_S = {"resnet56_cifar10": 3.0, "alexnet_fashion_mnist": 1.5}
EPOCH_IMAGES = {"resnet56_cifar10": 50000, "alexnet_fashion_mnist": 60000}


def time_setting(base: dict, steps: int, batch: int, channels_last: bool, autocast: bool, compile_model: bool,
                 threads: int) -> dict:
    import torch

    from harness.config import RunConfig
    from harness.train import Trainer

    cfg = RunConfig.from_dict({**base, "train": {
        "epochs": 2, "batch_size": batch, "lr": 0.05, "schedule": "constant", "channels_last": channels_last,
        "precision": "bf16" if autocast and torch.cuda.is_available() else "fp32", "threads": threads, "device": "auto"}})
    trainer = Trainer(cfg)
    if compile_model:
        trainer.model = torch.compile(trainer.model)
    epochs = []
    before = loadavg()
    trainer.run(lambda epoch, metrics: epochs.append(metrics))
    timed = epochs[-1]
    return {"channels_last": channels_last, "autocast_bf16": trainer.amp_dtype is not None, "compile": compile_model,
            "steps": timed["batches"], "epoch_time_s_measured": round(timed["epoch_time_s"], 3),
            "warmup_epoch_time_s": round(epochs[0]["epoch_time_s"], 3),
            "images_per_s": round(timed["images_per_s"], 1),
            "data_share": round(timed["data_time_s"] / timed["epoch_time_s"], 4),
            "test_acc": round(timed["test_acc"], 2), "load": {"before": before, "after": loadavg()}}


def _has_fashion_mnist() -> bool:
    from harness.data import locate
    from harness.errors import DatasetNotFound

    try:
        locate("fashion_mnist")
        return True
    except DatasetNotFound:
        return False


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="batches per timed epoch (default: 4 CPU, 100 GPU)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (not a TrainConfig switch yet)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    ap.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not the figure")
    args = ap.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available()
    steps = args.steps or (1 if args.quick else 100 if cuda else 4)
    batch = 8 if args.quick else 128
    # Settings: fp32 contiguous (the plain baseline), channels_last, and on a GPU channels_last + bf16.
    settings = [(False, False, False), (True, False, False)]
    if cuda:
        settings.append((True, True, False))
    if args.compile:
        settings.append((True, cuda, True))
    out: dict = {}
    loads: dict = {}
    held_out = 8 if args.quick else 128  # validation images (and CIFAR test images written)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_cifar10(Path(tmp), steps * batch + held_out, held_out)
        fashion_root = None if not args.quick and _has_fashion_mnist() else \
            str(write_fashion_mnist(Path(tmp), steps * batch + held_out, held_out))
        workloads = {
            "resnet56_cifar10": {"data": {"dataset": "cifar10", "data_root": str(root), "val_size": held_out},
                                 "model": {"name": "resnet56"}},
            "alexnet_fashion_mnist": {"data": {"dataset": "fashion_mnist", "data_root": fashion_root,
                                               "val_size": held_out,
                                               "train_subset": steps * batch,
                                               "test_subset": held_out if args.quick else 1000},
                                      "model": {"name": "alexnet"}},
        }
        for name, base in workloads.items():
            rows = []
            for channels_last, autocast, compile_model in settings:
                row = time_setting(base, steps, batch, channels_last, autocast, compile_model, args.threads)
                row["epoch_s_extrapolated"] = round(EPOCH_IMAGES[name] / row["images_per_s"], 1)
                loads[f"{name}/cl{int(channels_last)}_bf16{int(row['autocast_bf16'])}_c{int(compile_model)}"] = \
                    row.pop("load")
                rows.append(row)
            best = min(rows, key=lambda r: r["epoch_s_extrapolated"])
            out[name] = {"settings": rows, "best_epoch_s": best["epoch_s_extrapolated"],
                         "paper_epoch_s": round(PAPER_EPOCH_S[name], 1),
                         "target_epoch_s_h100": TARGET_EPOCH_S[name],
                         "target_status": ("measured on " + torch.cuda.get_device_name(0)) if cuda else
                         "not measured: no GPU lent to this task"}
    device = torch.cuda.get_device_name(0) if cuda else f"cpu, {args.threads} torch thread(s)"
    figure = out["resnet56_cifar10"]["best_epoch_s"]
    return emit("resnet56_cifar10_epoch_s" + ("" if cuda else "_cpu_extrapolated"), figure,
                TARGET_EPOCH_S["resnet56_cifar10"] if cuda else "not measured: no GPU lent to this task "
                "(target <= 3.0 s on an H100)", "lower",
                device=device, batch_size=batch,
                fashion_mnist_source="random images in the idx format" if fashion_root else "the real dataset",
                steps_timed=steps, workloads=out,
                compile_note="torch.compile is not a TrainConfig switch yet; --compile wraps the Trainer's model "
                             "in this script" + ("" if args.compile else " (not run this time)"),
                autocast_note="the bf16 setting is train.precision=bf16 on CUDA only (on CPU this script trains in fp32, as train.autocast did)",
                load=loads)


if __name__ == "__main__":
    main()
