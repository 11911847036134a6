"""The datasets the harness knows, declared without reading them: shape, official training-split
size, where they lie on disk and how to get them. Imports no torch, so the driver's checks (names,
sizes, ``locate``) cost nothing; the readers are in ``harness.data.datasets``. ``choose_loader``
decides from the declared nominal sizes where a trial's splits live (``data.loader``), also before
any data is read.

Where a dataset is looked for (``search_paths``): the ``data_root`` argument, ``$HARNESS_DATA``,
``~/.cache/harness``, then ``/usr/share/datasets/<name>`` and ``/usr/share/datasets/<name-with-dashes>``
(Debian's ``dataset-*`` packages). Under each root the folder torchvision uses is accepted
(``cifar-10-batches-py``, ``MNIST/raw``, ...) as well as ``<root>/<name>``; files lying directly in
a root only count for the per-dataset system roots, because a shared root with MNIST and
Fashion-MNIST idx files side by side could not tell them apart.
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, DatasetNotFound
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
    # written by harness.data.layout where it is looked for: (classes, per_class, val_per_class, width, height)
    generated: tuple[int, int, int, int, int] | None = None


def _declare(name: str, shape: tuple[int, int, int], train_size: int | None = None,
             nominal: tuple[int, int] = (0, 0), stream: bool = False, **layout) -> None:
    """``shape``: (channels, side in pixels when data.image_size is unset, classes), what a model is
    built for; known without reading the data, so cost limits are counted before any trial starts.
    ``train_size``: samples of the official training split; None where the folders on disk decide
    (ImageNet's class folders), so its sizes and classes are known only when a trial reads them.
    ``nominal``: (training, test) samples of the official release, what the memory a resident
    loader needs is counted from before any data is read (a smaller copy on disk needs less).
    ``stream``: a class-folder dataset that ``data.loader: stream`` reads image by image."""
    DATASETS.register(name, shape=shape, train_size=train_size, nominal=nominal, stream=stream)(Layout(**layout))


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
    if layout.generated is not None:  # written once, by the driver's check before Ray starts; then a no-op
        from .layout import write_layout  # imports torch: only when a generated dataset is asked for

        classes, per_class, val_per_class, width, height = layout.generated
        return write_layout(search_paths(name, data_root)[0] / name, classes, per_class, val_per_class, (width, height))
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


# The share of the free memory (CUDA free memory on a GPU, available host RAM on a CPU) that the
# resident splits may take when data.resident_max_gb is unset: the model, its activations and
# gradients, the optimizer's state and the batches being augmented need the rest.
SAFETY_FRACTION = 0.5


@dataclass(frozen=True)
class LoaderChoice:
    """Where a trial's splits live (``choose_loader``), as tagged on its run and printed by the driver."""

    dataset: str
    loader: str  # resident | stream
    resize_on: str  # load | device (stream: load, each image resized as it is read)
    resident_bytes: int  # the decoded train + val + test splits as the resident loader would hold them
    budget_bytes: int  # what the resident splits may take (data.resident_max_gb, or from free memory)

    def tags(self) -> dict:
        """resident_bytes: what the resident loader holds or would hold (streaming); the Trainer adds
        stored_bytes, what its loaders actually keep on the device (0 when streaming)."""
        return {"loader": self.loader, "resident_bytes": str(self.resident_bytes),
                "budget_bytes": str(self.budget_bytes), "resize_on": self.resize_on}

    def line(self, workers: int) -> str:
        """One line for the console, before training: what was chosen and why."""
        fits = self.resident_bytes <= self.budget_bytes
        why = f"decoded splits {_size(self.resident_bytes)} {'<=' if fits else '>'} budget {_size(self.budget_bytes)}"
        text = f"{self.dataset}: {self.loader} ({why})"
        if self.loader == "stream":
            text += f", {workers} worker{'s' if workers != 1 else ''} per trial"
        elif self.resize_on == "device":
            text += ", resized on the device per batch"
        if self.loader == "resident" and not fits:
            text += f"; {self.dataset} cannot stream, so it stays resident"
        return text


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale / 10:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def resize_on(data) -> str:
    """``data.resize_on`` resolved: ``device`` keeps a fixed-size dataset's native split and resizes
    each batch (auto: when ``data.image_size`` upsamples it); class folders are resized as read."""
    meta = DATASETS.meta(data.dataset)
    if data.resize_on != "auto":
        return data.resize_on
    upsampled = data.image_size is not None and data.image_size > meta["shape"][1]
    return "device" if upsampled and not meta["stream"] else "load"


def resident_bytes(data) -> int:
    """Bytes of the decoded uint8 train, val and test splits of ``data`` (a DataConfig) as the resident
    loader holds them, from the declared nominal sizes, the subsets, ``classes`` and the stored side."""
    meta = DATASETS.meta(data.dataset)
    channels, side, num_classes = meta["shape"]
    n_train, n_test = meta["nominal"]
    if data.classes:  # the first N classes: about N / classes of each split
        n_train, n_test = (math.ceil(n * min(data.classes, num_classes) / num_classes) for n in (n_train, n_test))
    n_val = int(data.val_size) if data.val_size >= 1 else round(data.val_size * n_train)
    n_fit = max(0, n_train - n_val)
    if data.train_subset is not None:
        n_fit = min(n_fit, data.train_subset)
    if data.test_subset is not None:
        n_test = min(n_test, data.test_subset)
    stored = side if resize_on(data) == "device" else (data.image_size or side)
    return (n_fit + n_val + n_test) * channels * stored * stored


def free_memory_bytes(device: str) -> int:
    """Free memory where a trial's splits would live: CUDA's free memory on ``cuda[:N]``, the host's
    available RAM otherwise (torch is imported for a GPU only)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil is a dependency; /proc/meminfo keeps a bare Linux install working
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        raise


def budget_bytes(data, device: str) -> int:
    """What the resident splits may take: ``data.resident_max_gb`` (GB = 1e9 bytes), else
    SAFETY_FRACTION of ``free_memory_bytes(device)``."""
    if data.resident_max_gb is not None:
        return int(data.resident_max_gb * 1e9)
    return int(SAFETY_FRACTION * free_memory_bytes(device))


def choose_loader(data, budget: int) -> LoaderChoice:
    """``data.loader`` resolved against ``budget`` bytes: auto is resident when the decoded splits fit
    and stream otherwise (a dataset that cannot stream stays resident); ``resident`` that cannot fit
    is a ConfigError naming the size needed and the budget."""
    need = resident_bytes(data)
    loader = data.loader
    if loader == "auto":
        loader = "stream" if need > budget and DATASETS.meta(data.dataset)["stream"] else "resident"
    elif loader == "resident" and need > budget:
        instead = "auto or stream, or " if DATASETS.meta(data.dataset)["stream"] else ""
        raise ConfigError("data.loader", "resident",
                          f"{instead}a larger data.resident_max_gb (or a smaller data.image_size or subset): "
                          f"the decoded splits of {data.dataset} need {_size(need)}, more than the budget of {_size(budget)}")
    return LoaderChoice(data.dataset, loader, "load" if loader == "stream" else resize_on(data), need, budget)


def workers_per_trial(data, cpus_per_trial: float) -> int:
    """Decoding processes of a streaming trial: ``data.num_workers``, else the trial's CPUs but one
    (the trial's own process feeds the model), at least 0 (decode in the trial's process)."""
    return data.num_workers if data.num_workers is not None else max(0, int(cpus_per_trial) - 1)


def _sklearn_data() -> Path:
    # find_spec locates the package without importing it (importing sklearn costs about a second).
    return Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data"


CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"

_declare("cifar10", shape=(3, 32, 10), train_size=50000, nominal=(50000, 10000), folders=("cifar-10-batches-py",),
         files=CIFAR10_FILES,
         get="extract cifar-10-python.tar.gz (" + _CIFAR_URL + ") into {root}, giving {root}/cifar-10-batches-py",
         download=True)
_declare("cifar100", shape=(3, 32, 100), train_size=50000, nominal=(50000, 10000), folders=("cifar-100-python",),
         files=("train", "test", "meta"),
         get="extract cifar-100-python.tar.gz (" + _CIFAR_URL + ") into {root}, giving {root}/cifar-100-python",
         download=True)
_declare("mnist", shape=(1, 28, 10), train_size=60000, nominal=(60000, 10000), folders=("MNIST/raw",), files=IDX_FILES,
         get="put the four idx files (gzipped or not) from https://yann.lecun.com/exdb/mnist/ in {root}/mnist",
         download=True)
_declare("fashion_mnist", shape=(1, 28, 10), train_size=60000, nominal=(60000, 10000), folders=("FashionMNIST/raw",),
         files=IDX_FILES,
         get="`apt-get install dataset-fashion-mnist` (installs " + str(SYSTEM_DATASETS / "fashion-mnist")
         + "), or put the four idx files (gzipped or not) from"
         " https://github.com/zalandoresearch/fashion-mnist in {root}/fashion_mnist",
         download=True)
_declare("oxford_pet", shape=(3, 224, 37), train_size=3680, nominal=(3680, 3669), stream=True,
         folders=("oxford-iiit-pet",),
         files=("images/", "annotations/trainval.txt", "annotations/test.txt"),
         get="extract images.tar.gz and annotations.tar.gz from"
         " https://www.robots.ox.ac.uk/~vgg/data/pets/ into {root}/oxford-iiit-pet",
         download=True, flat=False)  # torchvision's reader reads <parent>/oxford-iiit-pet only
# ILSVRC-2012: 1,281,167 training images, 50,000 validation images (the test split here)
_declare("imagenet", shape=(3, 224, 1000), nominal=(1281167, 50000), stream=True, folders=(), files=("train/", "val/"),
         get="ImageNet cannot be downloaded automatically: put train/<class>/*.JPEG and val/<class>/*.JPEG"
         " (val sorted into class folders) in {root}/imagenet")
# A stand-in for imagenet that needs nothing on disk: harness.data.layout's class-tinted JPEG textures,
# 4 classes of 12 training and 4 val images at 48x40 px, written into the first search root on first
# use; for running the ImageNet sweeps' streaming path at smoke (it is no benchmark of anything).
_declare("imagenet_generated", shape=(3, 224, 4), nominal=(48, 16), stream=True, folders=(), files=("train/", "val/"),
         get="nothing: it is written on first use (python -m harness.data.layout)", generated=(4, 12, 4, 48, 40))
_declare("digits", shape=(1, 8, 10), train_size=1437, nominal=(1437, 360), folders=(), files=("digits.csv.gz",),
         bundled=_sklearn_data(),
         get="it ships with scikit-learn: reinstall scikit-learn")
