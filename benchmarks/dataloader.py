"""Data path: images/s of harness.data.DeviceLoader against torchvision's DataLoader, same augmentation.

Both read the same CIFAR-10-format pickles (random images, written to a temp folder) and produce
normalized float batches of 128 with a random 4-px pad-and-crop and a random horizontal flip:
  * DeviceLoader: the split as one uint8 tensor on the device, batches gathered and augmented
    with whole-batch tensor ops (the loader every harness trial uses);
  * torchvision: datasets.CIFAR10 + transforms RandomCrop(32, padding=4), RandomHorizontalFlip,
    ToTensor, Normalize through torch.utils.data.DataLoader, at each ``--workers`` count given
    (the best of them is the baseline, so the comparison is against its fastest setting here).
Timed: iterating whole passes over the data (after one warm-up pass), no model. Figure: the ratio
of images/s, target >= 5 on CPU. Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, loadavg, write_cifar10  # noqa: E402

import torch  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def images_per_s(batches, passes: int) -> tuple[float, int]:
    """Images/s over ``passes`` whole passes of ``batches()`` (an iterable factory), after one warm-up."""
    for _ in batches():
        pass
    seen = 0
    start = time.perf_counter()
    for _ in range(passes):
        for x, _y in batches():
            seen += x.shape[0]
    return seen / (time.perf_counter() - start), seen


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000, help="training images written and iterated")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--passes", type=int, default=2, help="timed passes over the data per loader")
    ap.add_argument("--workers", default="0,2", help="DataLoader num_workers values to try")
    # One thread, as a harness trial has by default (train.threads = --cpus-per-trial = 1); a DataLoader
    # worker also runs one. On a shared 2-core machine two OpenMP threads wait on each other and
    # make every small tensor op 10-50x slower, which would measure the contention, not the loader.
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    ap.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not the figure")
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.passes, args.workers = 256, 1, "0"
    if args.threads:
        torch.set_num_threads(args.threads)

    import torchvision
    from torchvision import transforms

    from harness.data import DeviceLoader, load

    results: dict = {"load": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_cifar10(Path(tmp), args.images, 16)
        splits = load("cifar10", data_root=str(root), val_size=0)
        info = splits.info
        device_loader = DeviceLoader(splits.train, args.batch_size, device="cpu", mean=info.mean, std=info.std,
                                     crop_padding=4, flip=True, shuffle=True, seed=0)
        epoch = iter(range(10**6))
        before = loadavg()
        results["device_loader_images_per_s"], _ = images_per_s(lambda: device_loader.epoch(next(epoch)), args.passes)
        results["load"]["device_loader"] = {"before": before, "after": loadavg()}

        transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                        transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
        # torchvision checks each file's md5 against the real CIFAR-10; these are random images in
        # its format, so (as harness.data does) presence is checked instead of the checksum.
        class CIFAR10Format(torchvision.datasets.CIFAR10):
            train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.train_list]
            test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.test_list]
            meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}

        dataset = CIFAR10Format(str(root), train=True, transform=transform)
        baseline = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                                 num_workers=workers, persistent_workers=workers > 0)
            before = loadavg()
            baseline[workers], _ = images_per_s(lambda: loader, args.passes)
            results["load"][f"torchvision_workers{workers}"] = {"before": before, "after": loadavg()}
    best_workers = max(baseline, key=baseline.get)
    ratio = results["device_loader_images_per_s"] / baseline[best_workers]
    return emit("device_loader_speedup_x", round(ratio, 2), 5.0, "higher",
                device="cpu", images=args.images, batch_size=args.batch_size, passes=args.passes,
                torch_threads=torch.get_num_threads(),
                device_loader_images_per_s=round(results["device_loader_images_per_s"]),
                torchvision_images_per_s={str(w): round(v) for w, v in baseline.items()},
                baseline_workers=best_workers, load=results["load"],
                gpu="not measured: no GPU lent to this task (target there: data <= 5 % of step time)")


if __name__ == "__main__":
    main()
