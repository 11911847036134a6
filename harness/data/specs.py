"""The datasets the harness knows, declared without reading them: shape, official training-split
size, where they lie on disk and how to get them. Imports no torch, so the driver's checks (names,
sizes, ``locate``) cost nothing; the readers are in ``harness.data.datasets``.

Where a dataset is looked for (``search_paths``): the ``data_root`` argument, ``$HARNESS_DATA``,
``~/.cache/harness``, then ``/usr/share/datasets/<name>`` and ``/usr/share/datasets/<name-with-dashes>``
(Debian's ``dataset-*`` packages). Under each root the folder torchvision uses is accepted
(``cifar-10-batches-py``, ``MNIST/raw``, ...) as well as ``<root>/<name>``; files lying directly in
a root only count for the per-dataset system roots, because a shared root with MNIST and
Fashion-MNIST idx files side by side could not tell them apart.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DatasetNotFound
from ..registry import DATASETS

# Where Debian's dataset-* packages install. $HARNESS_SYSTEM_DATASETS moves it: the suite points it at an
# empty folder to prove that the tests needing a system dataset skip cleanly on a machine without it.
SYSTEM_DATASETS = Path(os.environ.get("HARNESS_SYSTEM_DATASETS") or "/usr/share/datasets")


@dataclass(frozen=True)
class Layout:
    """A dataset's registry entry: where its files lie and how to get them."""

    folders: tuple[str, ...]  # torchvision's folder(s) under a root
    files: tuple[str, ...]  # must exist in the dataset folder; "x/" is a folder; idx files may end in .gz
    get: str  # how to obtain it, for the not-found message
    download: bool = False  # torchvision can fetch it (md5-checked): harness.data.datasets.DOWNLOADS
    flat: bool = True  # files may lie directly in <root>/<name> (or in the dataset's own system root)
    bundled: Path | None = None  # ships with a Python package: the only place searched


def _declare(name: str, shape: tuple[int, int, int], train_size: int | None = None, **layout) -> None:
    """``shape``: (channels, side in pixels when data.image_size is unset, classes), what a model is
    built for; known without reading the data, so cost limits are counted before any trial starts.
    ``train_size``: samples of the official training split; None where the folders on disk decide
    (ImageNet's class folders), so its sizes and classes are known only when a trial reads them."""
    DATASETS.register(name, shape=shape, train_size=train_size)(Layout(**layout))


def nominal_shape(name: str, image_size: int | None = None, classes: int | None = None):
    """((C, H, W), num_classes) of ``name``'s images as a trial builds its model for them, from the
    registry alone (ImageNet's class count is the folders' on disk: 1000 for ILSVRC-2012)."""
    channels, side, num_classes = DATASETS.meta(name)["shape"]
    side = image_size or side
    return (channels, side, side), min(classes, num_classes) if classes else num_classes


def nominal_size(name: str) -> tuple[int | None, int | None]:
    """(samples of the official training split, classes) from the registry alone, for the checks
    before Ray starts; (None, None) where only the data on disk can tell."""
    meta = DATASETS.meta(name)
    return (None, None) if meta["train_size"] is None else (meta["train_size"], meta["shape"][2])


def dataset_names() -> list[str]:
    return DATASETS.names()


def _roots(name: str, data_root: str | None) -> list[tuple[Path, bool]]:
    """(root, is the root this dataset's own folder) in search order, without duplicates."""
    layout: Layout = DATASETS.get(name)
    if layout.bundled is not None:
        return [(layout.bundled, True)]
    generic = [Path(p).expanduser() for p in (data_root, os.environ.get("HARNESS_DATA")) if p]
    generic.append(Path.home() / ".cache" / "harness")
    own = [SYSTEM_DATASETS / name, SYSTEM_DATASETS / name.replace("_", "-")]
    roots, seen = [], set()
    for path, is_own in [(p, False) for p in generic] + [(p, True) for p in own]:
        if path not in seen:
            seen.add(path)
            roots.append((path, is_own))
    return roots


def search_paths(name: str, data_root: str | None = None) -> list[Path]:
    """The roots searched for ``name``, in order; ``data.download: true`` saves into the first."""
    return [root for root, _ in _roots(name, data_root)]


def _candidates(name: str, data_root: str | None) -> list[Path]:
    layout: Layout = DATASETS.get(name)
    dirs = []
    for root, is_own in _roots(name, data_root):
        bases = [root] if is_own else [root, root / name, root / name.replace("_", "-")]
        dirs += [base / f for base in bases for f in layout.folders]
        if layout.flat:
            dirs += bases if is_own else bases[1:]
    return list(dict.fromkeys(dirs))


def _present(folder: Path, entry: str) -> bool:
    if entry.endswith("/"):
        return (folder / entry).is_dir()
    return (folder / entry).is_file() or ("idx" in entry and (folder / (entry + ".gz")).is_file())


def find(name: str, data_root: str | None, fetch: Callable[[Path], None] | None = None) -> Path:
    """The folder ``name`` is read from; with ``fetch`` (the dataset's download into a root), a
    dataset found nowhere is fetched into the first root and looked for again."""
    layout: Layout = DATASETS.get(name)
    candidates = _candidates(name, data_root)
    for attempt in range(2):
        for folder in candidates:
            if all(_present(folder, entry) for entry in layout.files):
                return folder
        if not (fetch is not None and layout.download and attempt == 0):
            break
        fetch(search_paths(name, data_root)[0])
    first = search_paths(name, data_root)[0]
    how = layout.get.format(root=first)
    if layout.download and layout.bundled is None:
        how = f"run with --set data.download=true (needs internet; saves under {first}), or {how}"
    raise DatasetNotFound(
        f"dataset {name!r} not found: looked for {', '.join(layout.files)} in\n  "
        + "\n  ".join(str(c) for c in candidates)
        + f"\nTo get it: {how}."
    )


def downloadable(name: str) -> bool:
    """Whether ``data.download: true`` can fetch ``name`` (a bundled dataset needs no download)."""
    layout: Layout = DATASETS.get(name)
    return layout.download or layout.bundled is not None


def locate(name: str, data_root: str | None = None) -> Path:
    """The folder ``name`` would be read from; DatasetNotFound (listing every place searched) if none."""
    return find(name, data_root)


def _sklearn_data() -> Path:
    # find_spec locates the package without importing it (importing sklearn costs about a second).
    return Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data"


CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"

_declare("cifar10", shape=(3, 32, 10), train_size=50000, folders=("cifar-10-batches-py",), files=CIFAR10_FILES,
         get="extract cifar-10-python.tar.gz (" + _CIFAR_URL + ") into {root}, giving {root}/cifar-10-batches-py",
         download=True)
_declare("cifar100", shape=(3, 32, 100), train_size=50000, folders=("cifar-100-python",),
         files=("train", "test", "meta"),
         get="extract cifar-100-python.tar.gz (" + _CIFAR_URL + ") into {root}, giving {root}/cifar-100-python",
         download=True)
_declare("mnist", shape=(1, 28, 10), train_size=60000, folders=("MNIST/raw",), files=IDX_FILES,
         get="put the four idx files (gzipped or not) from https://yann.lecun.com/exdb/mnist/ in {root}/mnist",
         download=True)
_declare("fashion_mnist", shape=(1, 28, 10), train_size=60000, folders=("FashionMNIST/raw",), files=IDX_FILES,
         get="`apt-get install dataset-fashion-mnist` (installs " + str(SYSTEM_DATASETS / "fashion-mnist")
         + "), or put the four idx files (gzipped or not) from"
         " https://github.com/zalandoresearch/fashion-mnist in {root}/fashion_mnist",
         download=True)
_declare("oxford_pet", shape=(3, 224, 37), train_size=3680, folders=("oxford-iiit-pet",),
         files=("images/", "annotations/trainval.txt", "annotations/test.txt"),
         get="extract images.tar.gz and annotations.tar.gz from"
         " https://www.robots.ox.ac.uk/~vgg/data/pets/ into {root}/oxford-iiit-pet",
         download=True, flat=False)  # torchvision's reader reads <parent>/oxford-iiit-pet only
_declare("imagenet", shape=(3, 224, 1000), folders=(), files=("train/", "val/"),
         get="ImageNet cannot be downloaded automatically: put train/<class>/*.JPEG and val/<class>/*.JPEG"
         " (val sorted into class folders) in {root}/imagenet")
_declare("digits", shape=(1, 8, 10), train_size=1437, folders=(), files=("digits.csv.gz",), bundled=_sklearn_data(),
         get="it ships with scikit-learn: reinstall scikit-learn")
