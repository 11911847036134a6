"""Dataset readers: ``load(name)`` -> ``Splits`` of uint8 image tensors with train / val / test.

Each dataset is read from its standard on-disk format with torchvision's own readers (CIFAR
pickle batches, MNIST idx files, Oxford-IIIT Pet, ImageFolder trees) or sklearn (digits), and
comes back whole as one uint8 ``(N, C, H, W)`` tensor per split, ready for ``DeviceLoader``.
Images that are not one fixed size (pet, imagenet) are resized and center-cropped on load, so
the resident format is meant for those datasets' subsets that fit in memory. Which datasets exist
and where they are looked for is declared in ``harness.data.specs``; here are the readers.
"""
from __future__ import annotations

import dataclasses
import gzip
import math
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.transforms import v2

from ..adapters import pet_images_and_labels
from ..errors import ConfigError, DatasetNotFound, coerce
from ..registry import DATASETS
from . import specs

TEST_SUBSET_SEED = 0  # the test subset is the same for every split_seed, so test numbers compare
DIGITS_TEST_FRACTION, DIGITS_TEST_SEED = 0.2, 0  # digits has no official split: a fixed one
# Datasets whose images all have one native size, so a resize can wait until a batch is on the device;
# the others (pet, imagenet) are resized and cropped as they are decoded, whatever is asked.
FIXED_SIZE = frozenset({"cifar10", "cifar100", "mnist", "fashion_mnist", "digits"})


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    image_size: tuple[int, int]  # (height, width) in pixels
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]  # per channel, on the [0, 1] scale
    crop_padding: int  # pad-and-crop augmentation default in pixels per side; 0 = none
    flip: bool  # horizontal-flip augmentation default
    source: str  # folder (or file) the data was read from
    # (height, width) of the split's images as held in memory; differs from image_size only when
    # load(resize_on_device=True) left the resize to DeviceLoader(resize_to=image_size[0]). None: as image_size.
    stored_size: tuple[int, int] | None = None


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors elementwise has no single truth value
class Split:
    images: torch.Tensor  # uint8, (N, C, H, W), contiguous
    labels: torch.Tensor  # int64, (N,)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 (N,), got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class Splits:
    train: Split
    val: Split
    test: Split
    info: DatasetInfo


@dataclass(frozen=True)
class _Source:
    """One official split before hold-out and subsetting; images are decoded only for kept indices."""

    labels: torch.Tensor  # int64 (N,)
    take: Callable[[torch.Tensor], torch.Tensor]  # sorted int64 indices -> uint8 (n, C, H, W)


READERS: dict[str, Callable] = {}  # name -> (folder, image_size) -> (train source, test source, info)
DOWNLOADS: dict[str, Callable[[Path], None]] = {}  # name -> fetch into a root, md5-checked (specs: download=True)


def _reader(name: str, download: Callable[[Path], None] | None = None):
    def deco(fn):
        DATASETS.get(name)  # a reader only for a dataset declared in specs
        READERS[name] = fn
        if download is not None:
            DOWNLOADS[name] = download
        return fn

    return deco


def _seeded_perm(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def check_split_args(val_size, train_subset=None, test_subset=None, classes=None, image_size=None) -> None:
    """ConfigError for a hold-out or subset argument of ``load`` / ``load_folders`` that no split can take."""
    val_size = coerce("val_size", val_size, int | float, strict=True)
    if not (val_size >= 0 and (isinstance(val_size, int) or val_size < 1)):
        raise ConfigError("val_size", val_size, "an int >= 0 (samples) or a float in [0, 1) (fraction)")
    for key, value in (("image_size", image_size), ("train_subset", train_subset), ("test_subset", test_subset),
                       ("classes", classes)):
        if coerce(key, value, int | None, strict=True) is not None and value < 1:
            raise ConfigError(key, value, "a positive int or None")


def split_indices(name: str, train_labels: torch.Tensor, test_labels: torch.Tensor, num_classes: int,
                  val_size, split_seed: int, train_subset, test_subset, classes):
    """(train, val, test indices, classes kept): the hold-out both loaders draw, so the same arguments
    pick the same samples whether the split is decoded (``load``) or streamed (``folders.load_folders``)."""
    train_pool = torch.arange(len(train_labels))  # the samples the splits are drawn from
    test_pool = torch.arange(len(test_labels))
    if classes is not None:
        if classes > num_classes:
            raise ConfigError("data.classes", classes, f"at most the {num_classes} classes of {name}")
        train_pool = (train_labels < classes).nonzero().flatten()
        test_pool = (test_labels < classes).nonzero().flatten()
        num_classes = classes
    n_train = len(train_pool)
    n_val = val_size if isinstance(val_size, int) else int(round(val_size * n_train))
    if n_val >= n_train:
        raise ConfigError("val_size", val_size, f"fewer than the {n_train} training samples of {name}")
    perm = train_pool[_seeded_perm(n_train, split_seed)]
    val_idx = perm[:n_val].sort().values
    train_idx = perm[n_val:][:train_subset].sort().values
    test_idx = test_pool
    if test_subset is not None:
        test_idx = test_pool[_seeded_perm(len(test_pool), TEST_SUBSET_SEED)[:test_subset]].sort().values
    return train_idx, val_idx, test_idx, num_classes


def load(name: str, data_root: str | None = None, download: bool = False,
         val_size: int | float = 0.1, split_seed: int = 0, image_size: int | None = None,
         train_subset: int | None = None, test_subset: int | None = None, classes: int | None = None,
         resize_on_device: bool = False) -> Splits:
    """Read dataset ``name`` into memory as train / val / test uint8 splits.

    test is the official test split (digits: a fixed seeded 20 %). val is ``val_size`` samples
    (int) or that fraction (float) of the official training split, chosen by a permutation
    seeded with ``split_seed`` and disjoint from train. ``train_subset`` keeps that many of the
    remaining training samples (same permutation), ``test_subset`` a fixed seeded subset of test;
    a subset larger than the split keeps it whole. ``image_size`` resizes to a square (default:
    the native size, 224 for pet and imagenet). ``classes`` keeps only the samples of the first
    ``classes`` classes (labels below it, in the dataset's own label order; Pet: breeds sorted by
    name) in every split, before the hold-out and the subsets, and ``info.num_classes`` becomes it.
    Indices are kept in their on-disk order.

    ``resize_on_device=True`` with an ``image_size`` on a fixed-size dataset (``FIXED_SIZE``) keeps
    the native images: ``info.image_size`` is still the size the model sees and ``info.stored_size``
    the native one, for ``DeviceLoader(resize_to=info.image_size[0])``. Otherwise (and always for
    pet and imagenet) the splits hold ``image_size`` images and ``stored_size`` equals it.
    """
    DATASETS.get(name)
    check_split_args(val_size, train_subset, test_subset, classes, image_size)
    folder = specs.find(name, data_root, DOWNLOADS.get(name) if download else None)
    defer = bool(resize_on_device) and image_size is not None and name in FIXED_SIZE
    train_src, test_src, info = READERS[name](folder, None if defer else image_size)
    stored = info.image_size
    info = dataclasses.replace(info, stored_size=stored, image_size=(image_size, image_size) if defer else stored)

    train_idx, val_idx, test_idx, num_classes = split_indices(name, train_src.labels, test_src.labels,
                                                              info.num_classes, val_size, split_seed,
                                                              train_subset, test_subset, classes)
    info = dataclasses.replace(info, num_classes=num_classes)

    def split(src: _Source, idx: torch.Tensor) -> Split:
        return Split(src.take(idx).contiguous(), src.labels[idx].clone())

    return Splits(split(train_src, train_idx), split(train_src, val_idx), split(test_src, test_idx), info)


# ---- readers: folder, image_size -> (train source, test source, info) ----

def _array_source(images: torch.Tensor, labels: torch.Tensor, image_size: int | None) -> _Source:
    def take(idx: torch.Tensor) -> torch.Tensor:
        out = images[idx]
        if image_size is not None and tuple(out.shape[-2:]) != (image_size, image_size):
            out = v2.functional.resize(out, [image_size, image_size], antialias=True)
        return out

    return _Source(labels.long(), take)


def _resize_crop(image_size: int) -> v2.Compose:
    """Shorter side to ``image_size``, then the central square: PIL image -> uint8 (3, S, S)."""
    return v2.Compose([v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size), v2.PILToTensor()])


def _decoded_source(dataset, labels: list[int], image_size: int) -> _Source:
    """``dataset`` (built with ``_resize_crop``) is decoded only at the kept indices."""

    def take(idx: torch.Tensor) -> torch.Tensor:
        if len(idx) == 0:
            return torch.empty(0, 3, image_size, image_size, dtype=torch.uint8)
        # PIL releases the GIL while decoding, so threads scale with cores here.
        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
            return torch.stack(list(pool.map(lambda i: dataset[i][0], idx.tolist())))

    return _Source(torch.tensor(labels, dtype=torch.int64), take)


class _CIFAR10Files(torchvision.datasets.CIFAR10):
    # torchvision checks every file's md5 before reading, which rejects any other copy of the
    # format (e.g. a subset, or a test fixture). Here presence is checked only: md5=None makes
    # check_integrity test that the file exists. Downloads use the stock class, which checks md5.
    # base_folder="" reads the files from ``root`` itself, wherever the folder is.
    base_folder = ""
    train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


class _CIFAR100Files(torchvision.datasets.CIFAR100):
    base_folder = ""  # see _CIFAR10Files
    train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR100.train_list]
    test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR100.test_list]
    meta = {**torchvision.datasets.CIFAR100.meta, "md5": None}


def _cifar(cls, folder: Path, image_size, num_classes, mean, std, name):
    sources = []
    for train in (True, False):
        ds = cls(str(folder), train=train)
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW
        sources.append(_array_source(images, torch.tensor(ds.targets), image_size))
    size = image_size or 32
    info = DatasetInfo(name, 3, (size, size), num_classes, mean, std, 4, True, str(folder))
    return sources[0], sources[1], info


@_reader("cifar10", download=lambda root: torchvision.datasets.CIFAR10(str(root), download=True))
def _cifar10(folder: Path, image_size: int | None):
    return _cifar(_CIFAR10Files, folder, image_size, 10,
                  (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar10")


@_reader("cifar100", download=lambda root: torchvision.datasets.CIFAR100(str(root), download=True))
def _cifar100(folder: Path, image_size: int | None):
    return _cifar(_CIFAR100Files, folder, image_size, 100,
                  (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar100")


def _read_idx(folder: Path, stem: str, reader) -> torch.Tensor:
    path = folder / stem
    if path.is_file():
        return reader(str(path))
    # torchvision's idx reader opens a plain path only, so a .gz is decompressed to a temp file.
    with gzip.open(folder / (stem + ".gz"), "rb") as src, tempfile.NamedTemporaryFile() as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        return reader(dst.name)


def _idx(folder: Path, image_size, mean, std, name):
    sources = []
    for part in ("train", "t10k"):
        images = _read_idx(folder, f"{part}-images-idx3-ubyte", read_image_file).unsqueeze(1)
        labels = _read_idx(folder, f"{part}-labels-idx1-ubyte", read_label_file)
        sources.append(_array_source(images.contiguous(), labels, image_size))
    size = image_size or 28
    info = DatasetInfo(name, 1, (size, size), 10, mean, std, 0, False, str(folder))
    return sources[0], sources[1], info


@_reader("mnist", download=lambda root: torchvision.datasets.MNIST(str(root), download=True))
def _mnist(folder: Path, image_size: int | None):
    return _idx(folder, image_size, (0.1307,), (0.3081,), "mnist")


@_reader("fashion_mnist", download=lambda root: torchvision.datasets.FashionMNIST(str(root), download=True))
def _fashion_mnist(folder: Path, image_size: int | None):
    return _idx(folder, image_size, (0.2860,), (0.3530,), "fashion_mnist")


_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _download_pet(root: Path) -> None:
    for split in ("trainval", "test"):
        torchvision.datasets.OxfordIIITPet(str(root), split=split, download=True)


@_reader("oxford_pet", download=_download_pet)
def _oxford_pet(folder: Path, image_size: int | None):
    size = image_size or 224
    sources = []
    for split in ("trainval", "test"):
        ds = torchvision.datasets.OxfordIIITPet(str(folder.parent), split=split, transform=_resize_crop(size))
        # the labels as torchvision parsed them: ds[i] would decode every image for its label
        sources.append(_decoded_source(ds, pet_images_and_labels(ds)[1], size))
    info = DatasetInfo("oxford_pet", 3, (size, size), 37, _IMAGENET_MEAN, _IMAGENET_STD, 0, True, str(folder))
    return sources[0], sources[1], info


@_reader("imagenet")
def _imagenet(folder: Path, image_size: int | None):
    size = image_size or 224
    train = torchvision.datasets.ImageFolder(str(folder / "train"), transform=_resize_crop(size))
    val = torchvision.datasets.ImageFolder(str(folder / "val"), transform=_resize_crop(size))
    unknown = sorted(set(val.classes) - set(train.classes))
    if unknown:
        raise DatasetNotFound(f"{folder / 'val'} has classes missing from train/: {', '.join(unknown[:5])}")
    # Each ImageFolder numbers only its own class folders; val labels follow train's numbering.
    val_labels = [train.class_to_idx[val.classes[t]] for t in val.targets]
    info = DatasetInfo("imagenet", 3, (size, size), len(train.classes), _IMAGENET_MEAN, _IMAGENET_STD,
                       0, True, str(folder))
    return _decoded_source(train, train.targets, size), _decoded_source(val, val_labels, size), info


_reader("imagenet_generated")(_imagenet)  # the same layout as imagenet (harness.data.layout writes it)


@_reader("digits")
def _digits(folder: Path, image_size: int | None):
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are counts 0..16 (of 4x4 blocks set in a 32x32 bitmap); scale to 0..255.
    images = (torch.from_numpy(digits.images).float() * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DIGITS_TEST_SEED))
    n_test = math.ceil(DIGITS_TEST_FRACTION * len(labels))  # ceil, as sklearn's train_test_split
    test_idx, train_idx = perm[:n_test].sort().values, perm[n_test:].sort().values
    train_pixels = images[train_idx].float() / 255  # statistics of the fixed training part only
    size = image_size or 8
    info = DatasetInfo("digits", 1, (size, size), 10, (train_pixels.mean().item(),), (train_pixels.std().item(),),
                       0, False, str(folder / "digits.csv.gz"))
    return (_array_source(images[train_idx].contiguous(), labels[train_idx], image_size),
            _array_source(images[test_idx].contiguous(), labels[test_idx], image_size), info)
