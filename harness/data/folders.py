"""Class-folder datasets as lists of files: ``scan(root)`` -> ``FolderSplit`` (paths, labels, classes),
and ``load_folders`` -> the train / val / test splits that ``harness.data.load`` holds out, as paths.

This is the streaming path's view of ``imagenet`` (any ImageFolder tree: ``<root>/<class>/<image>``)
and ``oxford_pet``: nothing is decoded here, so a split of any size costs its paths and one int64
label each. The files and their order are torchvision's ``ImageFolder``'s (class folders sorted,
files sorted, walked recursively, torchvision's image extensions), and the hold-out repeats
``load``'s index arithmetic, so both paths train, validate and test on the same images. Every
problem with a folder is a ``DatasetNotFound`` naming it, raised before any training.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..adapters import pet_images_and_labels
from ..errors import ConfigError, DatasetNotFound
from ..registry import DATASETS
from . import specs

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's
FOLDER_DATASETS = ("imagenet", "imagenet_generated", "oxford_pet")
STREAM_IMAGE_SIZE = 224  # the nominal side the ImageNet recipe crops to; the loader's image_size decides


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors elementwise has no single truth value
class FolderSplit:
    paths: tuple[str, ...]  # image files, sorted by (class folder, file name); Pet: its annotation file's order
    labels: torch.Tensor  # int64 (N,), class index (train's numbering)
    classes: tuple[str, ...]  # class names by index (folder names, sorted)

    def __post_init__(self):
        if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.paths),):
            raise ValueError(f"labels must be int64 ({len(self.paths)},), got {self.labels.dtype} "
                             f"{tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, idx: torch.Tensor) -> "FolderSplit":
        """The samples at ``idx`` (int64 indices), in that order."""
        return FolderSplit(tuple(self.paths[i] for i in idx.tolist()), self.labels[idx].clone(), self.classes)


def _images_under(folder: Path) -> list[str]:
    # ImageFolder's make_dataset order: os.walk sorted, file names sorted within each directory.
    found = []
    for where, _dirs, names in sorted(os.walk(folder, followlinks=True)):
        found += [os.path.join(where, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def scan(root: str | Path, classes: Sequence[str] | None = None) -> FolderSplit:
    """The images of the class-folder tree ``root``, labelled by class folder.

    ``classes`` (training's class names, for a validation or test tree) numbers the labels as
    training does; every class folder here must then be one of them. DatasetNotFound, naming the
    folder, for: no such folder, no class folders or no images at all, an empty class folder, a
    class missing from ``classes``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFound(f"image folder {root} does not exist (expected {root}/<class>/<image>)")
    found = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    per_class = {name: _images_under(root / name) for name in found}
    if not any(per_class.values()):
        raise DatasetNotFound(f"image folder {root} has no images (expected {root}/<class>/<image> with one of "
                              f"{', '.join(IMAGE_EXTENSIONS)})")
    empty = [name for name, files in per_class.items() if not files]
    if empty:
        raise DatasetNotFound(f"image folder {root} has empty class folders (no images): "
                              + ", ".join(str(root / n) for n in empty[:5]) + (" ..." if len(empty) > 5 else ""))
    numbering = tuple(found) if classes is None else tuple(classes)
    index = {name: i for i, name in enumerate(numbering)}
    unknown = [name for name in found if name not in index]
    if unknown:
        raise DatasetNotFound(f"{root} has classes missing from training: {', '.join(unknown[:5])}"
                              + (" ..." if len(unknown) > 5 else ""))
    paths = [p for name in found for p in per_class[name]]
    labels = [index[name] for name in found for _ in per_class[name]]
    return FolderSplit(tuple(paths), torch.tensor(labels, dtype=torch.int64), numbering)


def _pet(folder: Path) -> tuple[FolderSplit, FolderSplit]:
    import torchvision

    splits = []
    for split in ("trainval", "test"):
        ds = torchvision.datasets.OxfordIIITPet(str(folder.parent), split=split)
        images, labels = pet_images_and_labels(ds)
        splits.append(FolderSplit(tuple(str(p) for p in images), torch.tensor(labels, dtype=torch.int64),
                                  tuple(ds.classes)))
    return splits[0], splits[1]


def load_folders(name: str, root: str | None, val_size: int | float = 0.1, split_seed: int = 0,
                 train_subset: int | None = None, test_subset: int | None = None, classes: int | None = None):
    """(train, val, test, info) of ``name`` as paths: the same samples ``harness.data.load`` holds out.

    ``root`` is ``load``'s ``data_root`` (searched as it is; None: the usual places). test is
    imagenet's ``val/`` tree, Pet's test split. The hold-out, ``train_subset``, ``test_subset`` and
    ``classes`` (keep the first N classes) pick the same indices as ``load`` for the same arguments.
    """
    from .datasets import _IMAGENET_MEAN, _IMAGENET_STD, DatasetInfo, check_split_args, split_indices

    DATASETS.get(name)
    if name not in FOLDER_DATASETS:
        raise ConfigError("data.dataset", name,
                          f"a class-folder dataset to stream: one of {', '.join(FOLDER_DATASETS)}")
    check_split_args(val_size, train_subset, test_subset, classes)
    folder = specs.find(name, root)
    if name != "oxford_pet":  # imagenet and its generated stand-in
        train_src = scan(folder / "train")
        test_src = scan(folder / "val", classes=train_src.classes)
    else:
        train_src, test_src = _pet(folder)
    num_classes = len(train_src.classes)
    train_idx, val_idx, test_idx, num_classes = split_indices(name, train_src.labels, test_src.labels, num_classes,
                                                              val_size, split_seed, train_subset, test_subset, classes)

    def keep(split: FolderSplit, idx: torch.Tensor) -> FolderSplit:
        return dataclasses.replace(split.take(idx), classes=split.classes[:num_classes])

    info = DatasetInfo(name, 3, (STREAM_IMAGE_SIZE, STREAM_IMAGE_SIZE), num_classes, _IMAGENET_MEAN, _IMAGENET_STD,
                       0, True, str(folder))
    return keep(train_src, train_idx), keep(train_src, val_idx), keep(test_src, test_idx), info
