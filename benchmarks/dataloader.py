"""Data path: images/s of harness.data.DeviceLoader against torchvision's DataLoader, same augmentation.

Both read the same CIFAR-10-format pickles (random images, written to a temp folder) and produce
normalized float batches of 128 with a random 4-px pad-and-crop and a random horizontal flip:
  * DeviceLoader: the split as one uint8 tensor on the device, batches gathered and augmented
    with whole-batch tensor ops (the loader every harness trial uses);
  * torchvision: datasets.CIFAR10 + transforms RandomCrop(32, padding=4), RandomHorizontalFlip,
    ToTensor, Normalize through torch.utils.data.DataLoader, at each ``--workers`` count given
    (the best of them is the baseline, so the comparison is against its fastest setting here).
Timed: iterating whole passes over the data (after one warm-up pass), no model. Figure: the ratio
of images/s, target >= 5 on CPU. Beside it (same data, same minutes): the crop as it was before
the one-gather version (a 4-index advanced-indexing gather, bit-identical batches), whose ratio
``gather_speedup_x`` has the target >= 2 (issue 14), and the DeviceLoader resizing each batch to
224 px on the device (``resize_to``, Pöllot et al.'s protocol) against the pre-resized 224-px split.
``--decode-images N`` also measures the ImageNet training recipe's CPU cost per core: N JPEGs of
400x350 px (``harness.data.layout``'s textures), each read, decoded by ``torchvision.io.decode_jpeg``,
cropped by ``v2.RandomResizedCrop(224)`` and flipped, in this one-thread process, the work a
streaming loader's worker does per image (RESULTS.md's scaling section turns it into cores per GPU).
Ends with one JSON line.
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


def decode_rate(n_images: int, folder: Path) -> dict:
    """Images/s of read + decode_jpeg + RandomResizedCrop(224) + flip on one thread, after a warm-up image."""
    import torchvision
    from torchvision.transforms import v2

    from harness.data.layout import write_layout

    root = write_layout(folder / "jpegs", classes=4, per_class=-(-n_images // 4), val_per_class=0, size=(400, 350))
    paths = sorted((root / "train").rglob("*.JPEG"))[:n_images]
    recipe = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()])
    torch.manual_seed(0)
    recipe(torchvision.io.decode_jpeg(torchvision.io.read_file(str(paths[0]))))
    decode_s = 0.0
    start = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        image = torchvision.io.decode_jpeg(torchvision.io.read_file(str(path)), mode=torchvision.io.ImageReadMode.RGB)
        decode_s += time.perf_counter() - t0
        out = recipe(image)
    total = time.perf_counter() - start
    assert out.shape == (3, 224, 224)
    return {"images": len(paths), "size": "400x350", "mean_file_kb": round(sum(p.stat().st_size for p in paths)
                                                                         / len(paths) / 1024, 1),
            "images_per_s_per_core": round(len(paths) / total, 1), "decode_only_images_per_s": round(len(paths)
                                                                                                   / decode_s, 1)}


def advanced_indexing_loader():
    """DeviceLoader with its crop as before issue 14 (kept here to measure against; tests/test_data.py
    checks that both give the same batches)."""
    import torch.nn.functional as F

    from harness.data import DeviceLoader

    class AdvancedIndexing(DeviceLoader):
        def _augment(self, images, generator):
            n, channels, height, width = images.shape
            pad = self.crop_padding
            offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=self.device)
            flips = torch.rand(n, generator=generator, device=self.device) < 0.5
            rows = offsets[:, :1] + torch.arange(height, device=self.device)
            cols = torch.arange(width, device=self.device).expand(n, width)
            if self.flip:
                cols = torch.where(flips[:, None], cols.flip(1), cols)
            cols = offsets[:, 1:] + cols
            padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
            batch = torch.arange(n, device=self.device)[:, None, None, None]
            channel = torch.arange(channels, device=self.device)[None, :, None, None]
            return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]

    return AdvancedIndexing


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
    ap.add_argument("--passes", type=int, default=5, help="timed passes over the data per loader")
    ap.add_argument("--resize-images", type=int, default=1024,
                    help="images iterated for the 224-px resize comparison (0 skips it)")
    ap.add_argument("--workers", default="0,2", help="DataLoader num_workers values to try")
    # One thread, as a harness trial has by default (train.threads = --cpus-per-trial = 1); a DataLoader
    # worker also runs one. On a shared 2-core machine two OpenMP threads wait on each other and
    # make every small tensor op 10-50x slower, which would measure the contention, not the loader.
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    ap.add_argument("--decode-images", type=int, default=0,
                    help="also time JPEG decode + RandomResizedCrop(224) per core on this many 400x350 images")
    ap.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not the figure")
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.passes, args.workers, args.resize_images = 256, 1, "0", 128
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
        old_loader = advanced_indexing_loader()(splits.train, args.batch_size, device="cpu", mean=info.mean,
                                                std=info.std, crop_padding=4, flip=True, shuffle=True, seed=0)
        before = loadavg()
        results["advanced_indexing_images_per_s"], _ = images_per_s(lambda: old_loader.epoch(next(epoch)),
                                                                    args.passes)
        results["load"]["advanced_indexing_loader"] = {"before": before, "after": loadavg()}
        if args.resize_images:
            # Pöllot et al.'s protocol: CIFAR at 224 px, a 28-px pad-and-crop (of the 224-px image) + flip.
            from harness.data import Split

            small = Split(splits.train.images[: args.resize_images].contiguous(),
                          splits.train.labels[: args.resize_images].clone())
            big = Split(load("cifar10", data_root=str(root), val_size=0, image_size=224,
                             train_subset=args.resize_images).train.images, small.labels)
            on_device = DeviceLoader(small, args.batch_size, mean=info.mean, std=info.std, crop_padding=28,
                                     flip=True, seed=0, resize_to=224)
            pre_resized = DeviceLoader(big, args.batch_size, mean=info.mean, std=info.std, crop_padding=28,
                                       flip=True, seed=0)
            for name, ldr in (("resize_on_device", on_device), ("pre_resized_224", pre_resized)):
                before = loadavg()
                rate, _ = images_per_s(lambda: ldr.epoch(next(epoch)), 1)
                results["load"][name] = {"before": before, "after": loadavg()}
                results[name] = {"images_per_s": round(rate), "stored_mb": round(ldr.stored_bytes() / 1e6, 2)}
        if args.decode_images:
            before = loadavg()
            results["decode"] = decode_rate(args.decode_images, Path(tmp))
            results["load"]["decode"] = {"before": before, "after": loadavg()}

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
                advanced_indexing_images_per_s=round(results["advanced_indexing_images_per_s"]),
                gather_speedup_x=round(results["device_loader_images_per_s"]
                                       / results["advanced_indexing_images_per_s"], 2), gather_target_x=2.0,
                resize_224={k: results[k] for k in ("resize_on_device", "pre_resized_224") if k in results},
                jpeg_decode_rrc=results.get("decode", "not measured (--decode-images 0)"),
                torchvision_images_per_s={str(w): round(v) for w, v in baseline.items()},
                baseline_workers=best_workers, load=results["load"],
                gpu="not measured: no GPU lent to this task (target there: data <= 5 % of step time)")


if __name__ == "__main__":
    main()
