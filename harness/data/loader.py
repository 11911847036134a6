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


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator every random draw of epoch ``epoch`` comes from: first the permutation, then augmentation."""
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(_epoch_seed(seed, epoch))
    return generator


def epoch_order(num_samples: int, seed: int, epoch: int, device: torch.device | str = "cpu",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The permutation of ``range(num_samples)`` (int64, on ``device``) that epoch ``epoch`` visits.

    It is the first draw from ``epoch_generator(seed, epoch, device)``; pass that generator as
    ``generator`` to go on drawing the epoch's augmentation from it afterwards, as DeviceLoader
    does (then ``seed``/``epoch`` are not used again). Any loader that calls this with the same
    (seed, epoch) visits the samples in the same order as DeviceLoader. The order depends on the
    device type: CPU and CUDA generators give different streams.
    """
    if generator is None:
        generator = epoch_generator(seed, epoch, device)
    return torch.randperm(num_samples, generator=generator, device=torch.device(device))


def resize(images: torch.Tensor, size: int, native_uint8: bool | None = None) -> torch.Tensor:
    """uint8 ``(n, C, H, W)`` -> uint8 ``(n, C, size, size)``, as the load path resizes.

    The load path's ``v2.functional.resize(..., antialias=True)`` (bilinear) runs torch's uint8 kernel
    on a CPU tensor, and elsewhere interpolates in float32 and rounds; this does the same, so on a CPU
    it gives the load path's bytes exactly, and on a GPU (where the split was resized on a CPU before)
    values within one gray level of them: the uint8 kernel's fixed-point weights round some pixels
    the other way. ``native_uint8`` forces one route (None: the uint8 kernel on CPU only).
    """
    if native_uint8 is None:
        native_uint8 = images.device.type == "cpu"
    kw = dict(size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if native_uint8:
        return F.interpolate(images, **kw)
    return F.interpolate(images.float(), **kw).round_().clamp_(0, 255).to(torch.uint8)


class DeviceLoader:
    """Batches of one ``Split`` kept on ``device``.

    x is ``(n, C, H, W)`` in ``dtype``, normalized as ``(v / 255 - mean) / std`` per channel
    (``mean``/``std`` on the [0, 1] scale; None means 0 and 1), optionally in channels_last
    memory format; y is int64 ``(n,)``. With ``shuffle=True`` each epoch is a fresh permutation
    and each image gets a random crop of its ``crop_padding``-px zero-padded self and, if ``flip``,
    a horizontal flip with probability 1/2. ``shuffle=False`` (evaluation) iterates in order
    without augmentation.

    ``resize_to=S`` keeps the split at its stored size and resizes every batch to S x S (``resize``:
    as the load path resizes, exactly so on a CPU) before augmenting it, so a 32-px split shown to
    the model at 224 px holds 32-px bytes on the device while its batches, ``crop_padding`` (pixels
    of the S x S image) included, are the pre-resized split's.
    """

    def __init__(self, split: Split, batch_size: int, device: torch.device | str = "cpu",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 crop_padding: int = 0, flip: bool = False, shuffle: bool = True, seed: int = 0,
                 channels_last: bool = False, dtype: torch.dtype = torch.float32,
                 resize_to: int | None = None):
        channels = split.images.shape[1]
        # ranges only: every caller passes a checked int (train.batch_size, a method's option, argparse's)
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "a positive int")
        if crop_padding < 0:
            raise ConfigError("crop_padding", crop_padding, "an int >= 0 (pixels per side)")
        if resize_to is not None and (isinstance(resize_to, bool) or not isinstance(resize_to, int) or resize_to < 1):
            raise ConfigError("resize_to", resize_to, "a positive int (side in pixels) or None")
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
        stored = tuple(split.images.shape[-2:])
        # Resizing to the stored size would change nothing but the rounding path: skip it.
        self.resize_to = None if resize_to is None or stored == (resize_to, resize_to) else resize_to
        self.images = split.images.to(self.device).contiguous()
        self.labels = split.labels.to(self.device)
        # (v/255 - mean)/std == v * scale + shift: one fused multiply-add per pixel in float32.
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1 / (255 * std_t)
        self._shift = -mean_t / std_t

    def stored_bytes(self) -> int:
        """Bytes the split holds on the device (images and labels), what a run logs as its data memory."""
        return self.images.numel() * self.images.element_size() + self.labels.numel() * self.labels.element_size()

    def __len__(self) -> int:
        """M: the number of batches in a full epoch, the last one possibly partial."""
        return math.ceil(self.num_samples / self.batch_size)

    def epoch(self, epoch: int, num_batches: int | None = None,
              indices: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the (x, y) batches of epoch ``epoch``.

        ``num_batches=k`` stops after the first k batches; ``indices`` iterates exactly those
        sample indices in that order instead of a permutation (augmentation still applies when
        shuffle=True).
        """
        generator = epoch_generator(self.seed, epoch, self.device)
        if indices is not None:
            order = torch.as_tensor(indices, dtype=torch.int64).to(self.device)
            if order.dim() != 1 or (len(order) and not 0 <= int(order.min()) <= int(order.max()) < self.num_samples):
                raise ConfigError("indices", f"tensor of shape {tuple(order.shape)}",
                                  f"a 1-d tensor of sample indices in [0, {self.num_samples})")
        elif self.shuffle:
            order = epoch_order(self.num_samples, self.seed, epoch, self.device, generator)
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
            if self.resize_to is not None:  # first, so that the crop is the pre-resized split's crop
                images = resize(images, self.resize_to)
            if augment:
                images = self._augment(images, generator)
            x = images.float().mul_(self._scale).add_(self._shift).to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def _augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Crop and flip the whole uint8 batch with one ``torch.gather`` over the flattened padded planes.

        Output pixel (i, j) of image b is padded pixel (row_b + i, col_b(j)) with col_b(j) = col_b + j,
        or col_b + W - 1 - j when b is flipped; one flat index per output pixel, shared by the channels.
        (A 4-index advanced-indexing gather gives the same batch but took 2.8 of a batch's 3.4 ms on a
        CPU: benchmarks/RESULTS.md, section 3.)
        """
        n, channels, height, width = images.shape
        pad = self.crop_padding
        # Draws are made in a fixed order and per batch, so a prefix of an epoch draws the same values.
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=self.device)
        flips = torch.rand(n, generator=generator, device=self.device) < 0.5
        padded_width = width + 2 * pad
        cols = torch.arange(width, device=self.device).expand(n, width)
        if self.flip:
            cols = torch.where(flips[:, None], cols.flip(1), cols)
        cols = offsets[:, 1:] + cols  # (n, W) into the padded image
        rows = (offsets[:, :1] + torch.arange(height, device=self.device)) * padded_width  # (n, H), flat row starts
        flat = (rows[:, :, None] + cols[:, None, :]).view(n, 1, height * width).expand(n, channels, height * width)
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        return padded.reshape(n, channels, -1).gather(2, flat).view(n, channels, height, width)
