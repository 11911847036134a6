"""A generated ImageNet-layout folder of real JPEGs: ``OUT/train/<class>/*.JPEG`` and ``OUT/val/<class>/*.JPEG``.

For running the ImageNet sweeps (and timing the streaming loader) where ImageNet is not on the
machine: the harness reads it as ``imagenet`` with ``--set data.data_root=PARENT`` when ``OUT`` is
``PARENT/imagenet``. Each image is a smooth random texture (low-frequency noise upsampled, as
photographs are mostly low-frequency, so files are sized and decode like photographs rather than
like white noise) tinted with its class's colour, so a model can learn the classes a little.
Every image is a function of (seed, split, class, index) alone. ``layout.json`` records the
parameters: writing the same ones again returns at once when the folder is finished and resumes
it when interrupted; other parameters, or a train/ or val/ this module did not write, are refused.

    python -m harness.data.layout --out DIR --classes 100 --per-class 50 --val-per-class 10 --size 400x350 --seed 0
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import encode_jpeg

TEXTURE_CELL = 16  # pixels per random value of the texture before upsampling
QUALITY = 90  # JPEG quality, as photographs are commonly saved


def _image(seed: int, split: int, label: int, index: int, num_classes: int, width: int, height: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, split, label, index]).generate_state(1)[0]))
    coarse = torch.rand(1, 3, -(-height // TEXTURE_CELL) + 1, -(-width // TEXTURE_CELL) + 1, generator=rng)
    texture = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    hue = torch.tensor([label / num_classes, (label * 7 % num_classes) / num_classes, 1 - label / num_classes])
    grain = torch.rand(3, height, width, generator=rng) * 0.08  # a little fine detail, as real images have
    pixels = 0.55 * texture + 0.4 * hue.view(3, 1, 1) + grain
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8)


def write_layout(out: str | Path, classes: int = 100, per_class: int = 50, val_per_class: int = 10,
                 size: tuple[int, int] = (400, 350), seed: int = 0, threads: int = 2) -> Path:
    """Write the tree (``size`` is (width, height) in pixels) and return ``out``; a no-op when ``out`` already
    holds a finished tree of these parameters."""
    if min(classes, per_class, size[0], size[1]) < 1 or val_per_class < 0:
        raise ValueError(f"classes, per_class and size must be positive and val_per_class >= 0, got "
                         f"{classes}, {per_class}, {size}, {val_per_class}")
    out = Path(out)
    params = {"classes": classes, "per_class": per_class, "val_per_class": val_per_class, "size": list(size),
              "seed": seed, "quality": QUALITY}
    marker = out / "layout.json"
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        if recorded == {**params, "complete": True}:
            return out
        if {k: v for k, v in recorded.items() if k != "complete"} != params:
            raise FileExistsError(f"{out} holds a generated layout of other parameters ({marker}: {recorded}); "
                                  "write into another folder or delete this one")
    elif any((out / split).exists() for split in ("train", "val")):
        # never write into a tree this module did not start (it could be the real ImageNet)
        raise FileExistsError(f"{out} already has train/ or val/ but no {marker.name}: not a generated layout")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({**params, "complete": False}))  # an interrupted run resumes over the same files
    width, height = size
    jobs = [(split, name, label, i) for split, name, count in ((0, "train", per_class), (1, "val", val_per_class))
            for label in range(classes) for i in range(count)]

    def write(job):
        split, name, label, i = job
        path = out / name / f"n{label:08d}" / f"n{label:08d}_{i}.JPEG"  # ILSVRC's class ids are n + 8 digits
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encode_jpeg(_image(seed, split, label, i, classes, width, height), quality=QUALITY)
        path.write_bytes(data.numpy().tobytes())

    # Parallel over images, not within one: small images with several intra-op threads each are ~10x slower.
    intra_op = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:  # torch's kernels and encode_jpeg release the GIL
            list(pool.map(write, jobs))
    finally:
        torch.set_num_threads(intra_op)
    marker.write_text(json.dumps({**params, "complete": True}))
    return out


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels (e.g. 400x350)") from None
    return width, height


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the folder to write (train/ and val/ go inside)")
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--per-class", type=int, default=50, help="training images per class")
    ap.add_argument("--val-per-class", type=int, default=10, help="images per class in val/")
    ap.add_argument("--size", type=_size, default=(400, 350), help="WIDTHxHEIGHT in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    out = write_layout(args.out, args.classes, args.per_class, args.val_per_class, args.size, args.seed, args.threads)
    print(out)
    return out


if __name__ == "__main__":
    main()
