"""Streamed batches of a class-folder split: ``StreamLoader(split, ...).epoch(e)`` yields normalized (x, y) on
the device, reading and decoding the JPEGs of each batch as it goes (the loader for splits too large to hold).

torch ``DataLoader`` workers read each file (``torchvision.io.read_file``) and decode it
(``decode_image``: libjpeg-turbo for JPEG), then apply the ImageNet recipe on the uint8 image:
for training ``RandomResizedCrop(image_size, scale, ratio)`` and a horizontal flip with
probability 1/2, for evaluation the short side resized to ``resize`` and the central
``image_size`` square. Batches travel as uint8 (a quarter of float32's bytes; pinned when the
device is CUDA) and are normalized on the device. With ``decode_on_device`` on CUDA the workers
only read the files and the batch is decoded there by nvjpeg in one call. Only paths and labels
are held; pixels exist only for the batches in flight (``prefetch_factor`` per worker).

The contract is ``DeviceLoader``'s: the epoch's order is ``epoch_order(seed, epoch)`` (the same
permutation the resident loader visits), ``num_batches=k`` is the first k batches of it, and
every random draw of a sample comes from a generator seeded by (seed, epoch, position in the
epoch) alone, never by worker state, so any worker count, and a run resumed at epoch ``e``, gives
the same batches.
"""
from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

import numpy as np
import torch
import torchvision
from torchvision.io import ImageReadMode
from torchvision.transforms.v2 import functional as TF

from ..errors import ConfigError
from .folders import FolderSplit
from .loader import epoch_order

_ATTEMPTS = 10  # RandomResizedCrop's tries at a box of the drawn area and aspect before its fallback
_DRAWS = 4 * _ATTEMPTS + 1  # per attempt: area, log-aspect, top, left; then the flip


class CorruptImage(RuntimeError):
    """An image file that cannot be read or decoded; the message names the file."""


def resident_bytes(num_images: int, channels: int, height: int, width: int) -> int:
    """Bytes a split needs decoded and held whole as one uint8 (N, C, H, W) tensor, as DeviceLoader holds it."""
    return int(num_images) * int(channels) * int(height) * int(width)


def sample_draws(seed: int, epoch: int, position: int) -> np.ndarray:
    """The uniform [0, 1) numbers behind one sample's augmentation, from (seed, epoch, position) alone."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, position])).random(_DRAWS)


def crop_box(height: int, width: int, draws: Sequence[float], scale, ratio) -> tuple[int, int, int, int]:
    """(top, left, h, w): torchvision's ``RandomResizedCrop.get_params`` with its random numbers given."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for a in range(_ATTEMPTS):
        u_area, u_aspect, u_top, u_left = draws[4 * a : 4 * a + 4]
        target = area * (scale[0] + u_area * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + u_aspect * (log_hi - log_lo))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(u_top * (height - h + 1)), int(u_left * (width - w + 1)), h, w
    aspect = width / height  # no try fitted: the central crop of the widest allowed aspect
    if aspect < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif aspect > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class _Recipe:
    """uint8 (3, H, W) image + its draws -> uint8 (3, S, S): the training or the evaluation recipe."""

    def __init__(self, train, image_size, resize, scale, ratio, flip):
        self.train, self.size, self.resize = train, image_size, resize
        self.scale, self.ratio, self.flip = scale, ratio, flip

    def __call__(self, image: torch.Tensor, draws) -> torch.Tensor:
        if self.train:
            top, left, h, w = crop_box(image.shape[-2], image.shape[-1], draws, self.scale, self.ratio)
            out = TF.resize(image[:, top : top + h, left : left + w], [self.size, self.size], antialias=True)
            return out.flip(-1) if self.flip and draws[-1] < 0.5 else out
        return TF.center_crop(TF.resize(image, self.resize, antialias=True), [self.size, self.size])


class _Files(torch.utils.data.Dataset):
    """Sample key (index, epoch, position) -> (uint8 image or, ``raw``, the file's bytes; label); None if
    the file is unreadable and ``skip_corrupt``. Keys carry the epoch so that a worker needs no state."""

    def __init__(self, paths, labels, seed, recipe, raw, skip_corrupt):
        # The paths as one byte array and offsets, not a tuple of str: a forked worker that reads a Python
        # object writes its refcount and so copies its page, which over an epoch copies every path into
        # every worker (ImageNet's 1.28 M paths: ~150 MB each); numpy buffers are read without writes.
        encoded = [os.fsencode(p) for p in paths]
        self.offsets = np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64)
        self.path_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.labels = labels.cpu().numpy().copy()
        self.seed, self.recipe, self.raw, self.skip_corrupt = seed, recipe, raw, skip_corrupt

    def __len__(self):
        return len(self.labels)

    def path(self, index: int) -> str:
        return os.fsdecode(self.path_bytes[self.offsets[index] : self.offsets[index + 1]].tobytes())

    def __getitem__(self, key):
        index, epoch, position = key
        path = self.path(index)
        try:
            data = torchvision.io.read_file(path)
            if self.raw:
                return data, int(self.labels[index]), (epoch, position), path
            image = torchvision.io.decode_image(data, mode=ImageReadMode.RGB)
        except (RuntimeError, OSError, ValueError) as exc:
            if self.skip_corrupt:
                return None
            raise CorruptImage(f"cannot read image {path}: {exc}") from None
        return self.recipe(image, sample_draws(self.seed, epoch, position)), int(self.labels[index])


class _BatchKeys:
    """The batch sampler of one epoch: lists of sample keys (index, epoch, position), made batch by batch
    from the order so that no per-sample Python object of the whole epoch exists at once."""

    def __init__(self, order: torch.Tensor, epoch: int, batch_size: int):
        self.order, self.epoch, self.batch_size = order, epoch, batch_size

    def __len__(self):
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            chunk = self.order[start : start + self.batch_size].tolist()
            yield [(i, self.epoch, start + j) for j, i in enumerate(chunk)]


def _collate(samples):
    """Stack the readable samples; also say how many were skipped (the batch is that many shorter)."""
    kept = [s for s in samples if s is not None]
    skipped = len(samples) - len(kept)
    if not kept:
        return None, None, skipped
    labels = torch.tensor([s[1] for s in kept], dtype=torch.int64)
    if len(kept[0]) == 4:  # raw bytes for the device's decoder: bytes, (epoch, position) and path as lists
        return [s[0] for s in kept], labels, skipped, [s[2] for s in kept], [s[3] for s in kept]
    return torch.stack([s[0] for s in kept]), labels, skipped


class StreamLoader:
    """Batches of a ``FolderSplit`` read from disk, normalized on ``device``.

    x is float32 ``(n, 3, image_size, image_size)``, ``(v / 255 - mean) / std`` per channel
    (channels_last if asked); y is int64 ``(n,)``. ``train`` picks the recipe (random resized crop
    and flip, or resize and centre crop); ``shuffle`` (default: ``train``) a fresh permutation each
    epoch, else the split's order. ``num_workers`` 0 decodes in this process. A corrupt or
    unreadable file raises ``CorruptImage`` naming it, or with ``skip_corrupt`` is left out of its
    batch and counted in ``corrupt_skipped``; a batch with nothing readable is not yielded.
    """

    def __init__(self, split: FolderSplit, batch_size: int, device, mean, std, train: bool, *,
                 image_size: int = 224, resize: int = 256, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 flip: bool = True, seed: int = 0, shuffle: bool | None = None, num_workers: int = 0,
                 channels_last: bool = False, skip_corrupt: bool = False, decode_on_device: bool = False,
                 prefetch_factor: int = 2):
        # ranges only: callers pass checked ints (train.batch_size, data.num_workers, a method's option)
        for key, value, least in (("batch_size", batch_size, 1), ("image_size", image_size, 1),
                                  ("resize", resize, 1), ("num_workers", num_workers, 0),
                                  ("prefetch_factor", prefetch_factor, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(key, value, f"an int >= {least}")
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ConfigError("scale", scale, "(lo, hi) with 0 < lo <= hi <= 1 (fractions of the image's area)")
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise ConfigError("ratio", ratio, "(lo, hi) with 0 < lo <= hi (width / height)")
        mean, std = tuple(mean), tuple(std)
        if len(mean) not in (1, 3):
            raise ConfigError("mean", mean, "1 or 3 values (one per channel)")
        if len(std) not in (1, 3) or min(std) <= 0:
            raise ConfigError("std", std, "1 or 3 positive values (one per channel)")
        self.device = torch.device(device)
        if decode_on_device and self.device.type != "cuda":
            raise ConfigError("decode_on_device", decode_on_device, f"false on a {self.device.type} device "
                              "(nvjpeg decodes on CUDA devices only)")
        self.batch_size = batch_size
        self.num_samples = len(split)
        self.corrupt_skipped = 0
        self.train, self.shuffle = train, train if shuffle is None else shuffle
        self.seed, self.num_workers, self.prefetch_factor = seed, num_workers, prefetch_factor
        self.channels_last, self.skip_corrupt, self.decode_on_device = channels_last, skip_corrupt, decode_on_device
        self.labels = split.labels
        self._recipe = _Recipe(train, image_size, resize, tuple(scale), tuple(ratio), flip)
        self._files = _Files(split.paths, split.labels, seed, self._recipe, decode_on_device, skip_corrupt)
        # (v/255 - mean)/std == v * scale + shift: one fused multiply-add per pixel on the device.
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale, self._shift = 1 / (255 * std_t), -mean_t / std_t

    def __len__(self) -> int:
        """M: the number of batches in a full epoch, the last one possibly partial."""
        return math.ceil(self.num_samples / self.batch_size)

    def order(self, epoch: int, indices=None) -> torch.Tensor:
        """The sample indices epoch ``epoch`` visits (int64, on the CPU): DeviceLoader's order."""
        if indices is not None:
            order = torch.as_tensor(indices, dtype=torch.int64).cpu()
            if order.dim() != 1 or (len(order) and not 0 <= int(order.min()) <= int(order.max()) < self.num_samples):
                raise ConfigError("indices", f"tensor of shape {tuple(order.shape)}",
                                  f"a 1-d tensor of sample indices in [0, {self.num_samples})")
            return order
        if self.shuffle:  # drawn on the device, as DeviceLoader draws it: CPU and CUDA streams differ
            return epoch_order(self.num_samples, self.seed, epoch, self.device).cpu()
        return torch.arange(self.num_samples)

    def epoch(self, epoch: int, num_batches: int | None = None,
              indices=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the (x, y) batches of epoch ``epoch``; ``num_batches=k``: its first k; ``indices``: exactly
        those samples in that order (augmented when ``train``)."""
        order = self.order(epoch, indices)
        available = math.ceil(len(order) / self.batch_size)
        if num_batches is not None:
            if not 0 <= num_batches <= available:
                raise ConfigError("num_batches", num_batches, f"an int in [0, {available}]")
            order = order[: num_batches * self.batch_size]
        return self._batches(_BatchKeys(order, epoch, self.batch_size))

    def _batches(self, batches: "_BatchKeys"):
        if not len(batches):
            return
        workers = self.num_workers
        # One DataLoader per epoch: its workers end with the epoch, so epochs never share a worker's queue.
        loader = torch.utils.data.DataLoader(
            self._files, batch_sampler=batches, num_workers=workers, collate_fn=_collate,
            pin_memory=self.device.type == "cuda", prefetch_factor=self.prefetch_factor if workers else None)
        for batch in loader:
            self.corrupt_skipped += batch[2]
            if batch[0] is None:
                continue
            if self.decode_on_device:
                images, labels = self._decode(batch)
                if images is None:
                    continue
            else:
                images, labels = batch[0].to(self.device, non_blocking=True), batch[1]
            x = images.float().mul_(self._scale).add_(self._shift)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, labels.to(self.device, non_blocking=True)

    def _decode(self, batch):
        """nvjpeg: the batch's files decoded in one call on the device, then the recipe per image there;
        (None, None) when none of them decodes and ``skip_corrupt``."""
        data, labels, _, keys, paths = batch
        try:
            images = torchvision.io.decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:  # one call failed: decode one by one to name (or skip) the bad file
            images = []
            for d, path in zip(data, paths):
                try:
                    images.append(torchvision.io.decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError as exc:
                    if not self.skip_corrupt:
                        raise CorruptImage(f"cannot read image {path}: {exc}") from None
                    self.corrupt_skipped += 1
                    images.append(None)
        kept = [i for i, image in enumerate(images) if image is not None]
        if not kept:
            return None, None
        # the same draws as the CPU path: from (seed, epoch, position), which the keys carry
        x = torch.stack([self._recipe(images[i], sample_draws(self.seed, *keys[i])) for i in kept])
        return x, labels[kept]
