"""Device-resident batches: ``DeviceLoader(split, ...).epoch(e)`` yields normalized (x, y) on the device.

After airbench: the whole split is copied to the device once as one uint8 tensor, and each batch
is gathered, augmented (random pad-and-crop, random horizontal flip) and normalized there with
whole-batch tensor ops, so an epoch makes no per-image Python calls and no host-device copies.

Every random choice of epoch ``e`` (its permutation and its augmentation) comes from a generator
seeded from ``(seed, e)`` alone, so a run resumed at epoch ``e`` sees exactly the batches an
uninterrupted run sees. The same holds for a prefix: ``epoch(e, num_batches=k)`` yields the first
``k`` batches of ``epoch(e)``, which is how the data-reduction samplers take ⌊α·M⌋ batches of the
usual size from each epoch's fresh permutation.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .datasets import Split


def _epoch_seed(seed: int, epoch: int) -> int:
    # SeedSequence mixes (seed, epoch) so that nearby pairs give unrelated streams, unlike seed + epoch.
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])


class DeviceLoader:
    """Batches of one ``Split`` kept on ``device``.

    x is ``(n, C, H, W)`` in ``dtype``, normalized as ``(v / 255 - mean) / std`` per channel
    (``mean``/``std`` on the [0, 1] scale; None means 0 and 1), optionally in channels_last
    memory format; y is int64 ``(n,)``. With ``shuffle=True`` each epoch is a fresh permutation
    and each image gets a random crop of its ``crop_padding``-px zero-padded self and, if ``flip``,
    a horizontal flip with probability 1/2. ``shuffle=False`` (evaluation) iterates in order
    without augmentation.
    """

    def __init__(self, split: Split, batch_size: int, device: torch.device | str = "cpu",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 crop_padding: int = 0, flip: bool = False, shuffle: bool = True, seed: int = 0,
                 channels_last: bool = False, dtype: torch.dtype = torch.float32):
        channels = split.images.shape[1]
        # ranges only: every caller passes a checked int (train.batch_size, a method's option, argparse's)
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "a positive int")
        if crop_padding < 0:
            raise ConfigError("crop_padding", crop_padding, "an int >= 0 (pixels per side)")
        mean = (0.0,) * channels if mean is None else tuple(mean)
        std = (1.0,) * channels if std is None else tuple(std)
        if len(mean) not in (1, channels):
            raise ConfigError("mean", mean, f"1 or {channels} values (one per channel)")
        if len(std) not in (1, channels) or min(std) <= 0:
            raise ConfigError("std", std, f"1 or {channels} positive values (one per channel)")

        self.device = torch.device(device)
        self.batch_size = batch_size
        self.num_samples = len(split.labels)
        self.crop_padding, self.flip, self.shuffle, self.seed = crop_padding, flip, shuffle, seed
        self.channels_last, self.dtype = channels_last, dtype
        self.images = split.images.to(self.device).contiguous()
        self.labels = split.labels.to(self.device)
        # (v/255 - mean)/std == v * scale + shift: one fused multiply-add per pixel in float32.
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1 / (255 * std_t)
        self._shift = -mean_t / std_t

    def __len__(self) -> int:
        """M: the number of batches in a full epoch, the last one possibly partial."""
        return math.ceil(self.num_samples / self.batch_size)

    def _generator(self, epoch: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(_epoch_seed(self.seed, epoch))
        return generator

    def epoch(self, epoch: int, num_batches: int | None = None,
              indices: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the (x, y) batches of epoch ``epoch``.

        ``num_batches=k`` stops after the first k batches; ``indices`` iterates exactly those
        sample indices in that order instead of a permutation (augmentation still applies when
        shuffle=True).
        """
        generator = self._generator(epoch)
        if indices is not None:
            order = torch.as_tensor(indices, dtype=torch.int64).to(self.device)
            if order.dim() != 1 or (len(order) and not 0 <= int(order.min()) <= int(order.max()) < self.num_samples):
                raise ConfigError("indices", f"tensor of shape {tuple(order.shape)}",
                                  f"a 1-d tensor of sample indices in [0, {self.num_samples})")
        elif self.shuffle:
            order = torch.randperm(self.num_samples, generator=generator, device=self.device)
        else:
            order = torch.arange(self.num_samples, device=self.device)
        available = math.ceil(len(order) / self.batch_size)
        if num_batches is not None:
            if not 0 <= num_batches <= available:
                raise ConfigError("num_batches", num_batches, f"an int in [0, {available}]")
            order = order[: num_batches * self.batch_size]
        return self._batches(order, generator)

    def _batches(self, order: torch.Tensor, generator: torch.Generator):
        augment = self.shuffle and (self.crop_padding > 0 or self.flip)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            images = self.images[idx]
            if augment:
                images = self._augment(images, generator)
            x = images.float().mul_(self._scale).add_(self._shift).to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def _augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Crop and flip the whole uint8 batch with one gather: per-image row and column indices."""
        n, channels, height, width = images.shape
        pad = self.crop_padding
        # Draws are made in a fixed order and per batch, so a prefix of an epoch draws the same values.
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=self.device)
        flips = torch.rand(n, generator=generator, device=self.device) < 0.5
        rows = offsets[:, :1] + torch.arange(height, device=self.device)  # (n, H) into the padded image
        cols = torch.arange(width, device=self.device).expand(n, width)
        if self.flip:
            cols = torch.where(flips[:, None], cols.flip(1), cols)
        cols = offsets[:, 1:] + cols  # (n, W)
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        batch = torch.arange(n, device=self.device)[:, None, None, None]
        channel = torch.arange(channels, device=self.device)[None, :, None, None]
        return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
