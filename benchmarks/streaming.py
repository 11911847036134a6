"""Streaming path: images/s and peak memory of harness.data.stream.StreamLoader against torchvision's reference.

Both read the same generated ImageNet-layout folder of real JPEGs (``harness.data.layout``: 100
classes, 400x350 px, ~40 KB each; written once under ``--root`` and reused) and produce shuffled,
normalized float32 batches of ``--batch-size`` 224x224 crops with the ImageNet training recipe:
  * StreamLoader(train=True): DataLoader workers read + ``decode_image`` (libjpeg-turbo) + random
    resized crop + flip on uint8, the batch normalized in the trial's process;
  * torchvision: ``datasets.ImageFolder`` (PIL) + ``transforms.v2`` RandomResizedCrop(224),
    RandomHorizontalFlip, ToImage, ToDtype(float32, scale=True), Normalize, through
    ``torch.utils.data.DataLoader`` (shuffle) at the same ``--workers``.
Each (loader, dataset size) runs in its own fresh process, so its peak memory is its own: sampled
every 0.1 s as the sum over the process and its DataLoader workers of RSS (an upper bound: pages
shared between the processes, torch's libraries among them, count once per process) and of PSS
(shared pages split between the processes that map them), and the CPU seconds of the timed epoch
over all of them (user + system: less disturbed by other jobs on shared cores than images/s).
Timed: one whole epoch after a warm-up of 3 batches (the files are in the page cache: they were
just written or read), no model.
Figures: the lower of the two sizes' images/s ratios (target >= 1.0 on CPU) and peak RSS (target
flat in dataset size, <= 1.5 GB). Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import PYTHON, emit, loadavg  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RSS_TARGET_GB = 1.5


class _PeakMemory:
    """Peak over time of the summed RSS and PSS (MB) of this process and its children, sampled in a thread."""

    def __init__(self, every_s: float = 0.1):
        import psutil

        self.me, self.every_s, self.rss_mb, self.pss_mb = psutil.Process(), every_s, 0.0, 0.0
        self.cpu_s: dict[int, float] = {}  # pid -> user + system seconds when last seen (workers end unseen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_at_start = 0.0

    def _sample(self):
        import psutil

        rss = pss = 0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # a worker that just ended
            self.cpu_s[proc.pid] = times.user + times.system
            rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
        self.rss_mb, self.pss_mb = max(self.rss_mb, rss / 2**20), max(self.pss_mb, pss / 2**20)

    def _run(self):
        while not self._stop.wait(self.every_s):
            self._sample()

    def cpu_seconds(self) -> float:
        """CPU time of this process and its workers since ``start_cpu`` (a worker's last 0.1 s may be missed)."""
        return sum(self.cpu_s.values()) - self._cpu_at_start

    def start_cpu(self):
        self._sample()
        self._cpu_at_start = sum(self.cpu_s.values())

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def measure(kind: str, folder: str, workers: int, batch_size: int, image_size: int, threads: int) -> dict:
    """images/s of one epoch of ``kind`` ('stream' or 'torchvision') over ``folder``/train, and its peak memory."""
    import torch

    torch.set_num_threads(threads)
    with _PeakMemory() as memory:
        if kind == "stream":
            from harness.data.folders import scan
            from harness.data.stream import StreamLoader

            loader = StreamLoader(scan(Path(folder) / "train"), batch_size, "cpu", MEAN, STD, True,
                                  image_size=image_size, num_workers=workers, seed=0)
            warm = lambda: loader.epoch(0, num_batches=3)  # noqa: E731
            timed = lambda: loader.epoch(1)  # noqa: E731
        else:
            import itertools

            import torchvision
            from torchvision.transforms import v2

            transform = v2.Compose([v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip(),
                                    v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
            dataset = torchvision.datasets.ImageFolder(str(Path(folder) / "train"), transform=transform)
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
            warm = lambda: itertools.islice(loader, 3)  # noqa: E731
            timed = lambda: loader  # noqa: E731
        for _ in warm():
            pass
        memory.start_cpu()
        seen, start = 0, time.perf_counter()
        for x, _y in timed():
            seen += x.shape[0]
        seconds = time.perf_counter() - start
        memory._sample()
        cpu_s = memory.cpu_seconds()
    assert x.shape[1:] == (3, image_size, image_size) and x.dtype == torch.float32
    return {"images_per_s": seen / seconds, "images": seen, "epoch_s": seconds, "cpu_ms_per_image": 1e3 * cpu_s / seen,
            "peak_rss_mb": round(memory.rss_mb), "peak_pss_mb": round(memory.pss_mb)}


def _in_fresh_process(kind: str, folder: Path, args) -> dict:
    command = [PYTHON, __file__, "--child", kind, "--folder", str(folder), "--workers", str(args.workers),
               "--batch-size", str(args.batch_size), "--image-size", str(args.image_size),
               "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000", help="training images per generated folder (100 classes)")
    ap.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "harness_stream_bench"),
                    help="where the generated folders are written once and reused")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both loaders")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=224)
    # One torch thread per process, as a trial runs by default (see dataloader.py: on shared cores,
    # extra intra-op threads measure contention, not the loader).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a tiny in-process run that checks the script, not the figure")
    ap.add_argument("--child", choices=("stream", "torchvision"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.folder, args.workers, args.batch_size, args.image_size,
                                 args.threads)))
        return {}

    from harness.data.layout import write_layout

    classes, size = (100, (400, 350))
    if args.quick:
        args.sizes, args.workers, args.batch_size, args.image_size, classes, size = "32", 0, 8, 32, 4, (64, 56)
    results, loads = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            base = Path(tmp if args.quick else args.root) / f"n{n}" / "imagenet"
            folder = write_layout(base, classes=classes, per_class=n // classes, val_per_class=2, size=size, seed=0)
            for kind in ("stream", "torchvision"):
                before = loadavg()
                if args.quick:  # in this process: the test suite checks the script, not the figure
                    results[f"{kind}_{n}"] = measure(kind, str(folder), args.workers, args.batch_size,
                                                     args.image_size, args.threads)
                else:
                    results[f"{kind}_{n}"] = _in_fresh_process(kind, folder, args)
                loads[f"{kind}_{n}"] = {"before": before, "after": loadavg()}
    sizes = [int(s) for s in args.sizes.split(",")]
    ratios = {str(n): round(results[f"stream_{n}"]["images_per_s"] / results[f"torchvision_{n}"]["images_per_s"], 2)
              for n in sizes}
    rss = {kind: {str(n): results[f"{kind}_{n}"]["peak_rss_mb"] for n in sizes} for kind in ("stream", "torchvision")}
    pss = {kind: {str(n): results[f"{kind}_{n}"]["peak_pss_mb"] for n in sizes} for kind in ("stream", "torchvision")}
    return emit("streaming_speedup_x", min(ratios.values()), 1.0, "higher",
                device="cpu", sizes=sizes, workers=args.workers, batch_size=args.batch_size,
                image_size=args.image_size, image_px=list(size), classes=classes, torch_threads=args.threads,
                speedup_x=ratios,
                stream_images_per_s={str(n): round(results[f"stream_{n}"]["images_per_s"], 1) for n in sizes},
                torchvision_images_per_s={str(n): round(results[f"torchvision_{n}"]["images_per_s"], 1)
                                          for n in sizes},
                cpu_ms_per_image={k: round(v["cpu_ms_per_image"], 2) for k, v in results.items()},
                cpu_speedup_x={str(n): round(results[f"torchvision_{n}"]["cpu_ms_per_image"]
                                             / results[f"stream_{n}"]["cpu_ms_per_image"], 2) for n in sizes},
                peak_rss_mb=rss, peak_pss_mb=pss, rss_target_mb=RSS_TARGET_GB * 1024,
                rss_target_met=all(v <= RSS_TARGET_GB * 1024 for v in rss["stream"].values()),
                load=loads, gpu="not measured: no GPU lent to this task (decode_on_device has not run on CUDA)")


if __name__ == "__main__":
    main()
