"""harness.data: tiny files in the real on-disk formats read back exactly; the device loader's batches."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data import DeviceLoader, Split, dataset_names, load, search_paths
from harness.data import specs as specs_module
from harness.errors import ConfigError, DatasetNotFound

FASHION = specs_module.SYSTEM_DATASETS / "fashion-mnist"  # Debian's dataset-fashion-mnist


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # No test may find data in the real ~/.cache/harness or a caller's $HARNESS_DATA.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HARNESS_DATA", raising=False)


# ---- writers for the real formats ----

def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_cifar10(root: Path, per_batch: int = 3, n_test: int = 4, seed: int = 0):
    """cifar-10-batches-py: 5 training batches, a test batch, batches.meta; rows are R, G, B planes."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    train_data, train_labels = [], []
    for b in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        _pickle(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": labels,
                                             "data": data, "filenames": [f"{b}_{i}.png" for i in range(per_batch)]})
        train_data.append(data)
        train_labels += labels
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, n_test).tolist()
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": test_labels, "data": test,
                                    "filenames": [f"t_{i}.png" for i in range(n_test)]})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072,
                                      "num_cases_per_batch": per_batch})
    return np.concatenate(train_data), np.array(train_labels), test, np.array(test_labels)


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 3):
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        _pickle(folder / name, {"filenames": [f"{i}.png" for i in range(n)], "batch_label": name,
                                "fine_labels": fine, "coarse_labels": [f // 5 for f in fine], "data": data})
        out += [data, np.array(fine)]
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                              "coarse_label_names": [f"c{i}" for i in range(20)]})
    return out


def write_idx(folder: Path, n_train: int = 50, n_test: int = 7, gz: bool = False):
    """MNIST idx files (magic 2051 images / 2049 labels, big-endian); image i has pixel [0, 0] = i."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    out = []
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        opener = gzip.open if gz else open
        suffix = ".gz" if gz else ""
        with opener(folder / f"{part}-images-idx3-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with opener(folder / f"{part}-labels-idx1-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
        out += [images, labels]
    return out


def _bands(path: Path, colors, width_each=(2, 4, 2), height=4, fmt="PNG"):
    """An image of vertical color bands, so a center crop keeps only the middle band."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.concatenate([np.full((height, w, 3), c, np.uint8) for c, w in zip(colors, width_each)], axis=1)
    Image.fromarray(pixels).save(path, fmt, **({"quality": 100} if fmt == "JPEG" else {}))


# ---- datasets ----

def test_registry_names():
    assert dataset_names() == sorted(["cifar10", "cifar100", "mnist", "fashion_mnist", "oxford_pet",
                                      "imagenet", "imagenet_generated", "digits"])


def test_cifar10_pickle_batches_read_exactly(tmp_path):
    train, train_labels, test, test_labels = write_cifar10(tmp_path)
    s = load("cifar10", data_root=str(tmp_path), val_size=0)
    assert s.train.images.shape == (15, 3, 32, 32) and s.train.images.dtype == torch.uint8
    assert s.train.images.is_contiguous() and s.train.labels.dtype == torch.int64
    assert torch.equal(s.train.images, torch.from_numpy(train.reshape(-1, 3, 32, 32)))
    assert s.train.labels.tolist() == train_labels.tolist()
    assert torch.equal(s.test.images, torch.from_numpy(test.reshape(-1, 3, 32, 32)))
    assert s.test.labels.tolist() == test_labels.tolist()
    # Row layout is 1024 red, then green, then blue values, each row-major.
    assert s.train.images[4, 1, 2, 3].item() == train[4, 1024 + 2 * 32 + 3]
    assert len(s.val.labels) == 0 and s.val.images.shape == (0, 3, 32, 32)
    info = s.info
    assert (info.channels, info.image_size, info.num_classes, info.crop_padding, info.flip) == (3, (32, 32), 10, 4, True)
    assert info.mean == (0.4914, 0.4822, 0.4465) and info.source == str(tmp_path / "cifar-10-batches-py")


def test_cifar100_fine_labels(tmp_path):
    train, train_fine, test, test_fine = write_cifar100(tmp_path)
    s = load("cifar100", data_root=str(tmp_path), val_size=0)
    assert torch.equal(s.train.images, torch.from_numpy(train.reshape(-1, 3, 32, 32)))
    assert s.train.labels.tolist() == train_fine.tolist() and s.test.labels.tolist() == test_fine.tolist()
    assert s.info.num_classes == 100 and s.info.std == (0.2673, 0.2564, 0.2762)


@pytest.mark.parametrize("gz, folder", [(False, "MNIST/raw"), (True, "mnist")])
def test_mnist_idx_raw_and_gz(tmp_path, gz, folder):
    train, train_labels, test, test_labels = write_idx(tmp_path / folder, gz=gz)
    s = load("mnist", data_root=str(tmp_path), val_size=0)
    assert s.train.images.shape == (50, 1, 28, 28) and s.test.images.shape == (7, 1, 28, 28)
    assert torch.equal(s.train.images[:, 0], torch.from_numpy(train))
    assert torch.equal(s.test.images[:, 0], torch.from_numpy(test))
    assert s.train.labels.tolist() == train_labels.tolist() and s.test.labels.tolist() == test_labels.tolist()
    assert s.info.mean == (0.1307,) and s.info.flip is False and s.info.source == str(tmp_path / folder)


def test_val_split_disjoint_seeded_and_subsets(tmp_path):
    train, train_labels, _, _ = write_idx(tmp_path / "mnist")
    root = str(tmp_path)
    s = load("mnist", data_root=root, val_size=10, split_seed=0)
    ids = lambda split: split.images[:, 0, 0, 0].tolist()  # pixel [0, 0] is the sample's index on disk
    assert len(ids(s.val)) == 10 and len(ids(s.train)) == 40
    assert set(ids(s.val)).isdisjoint(ids(s.train)) and sorted(ids(s.val) + ids(s.train)) == list(range(50))
    # Each kept sample keeps its own label and pixels.
    assert s.val.labels.tolist() == train_labels[ids(s.val)].tolist()
    assert torch.equal(s.val.images[:, 0], torch.from_numpy(train[ids(s.val)]))
    assert ids(load("mnist", data_root=root, val_size=0.2, split_seed=0).val) == ids(s.val)  # 0.2 * 50 = 10
    assert ids(load("mnist", data_root=root, val_size=10, split_seed=1).val) != ids(s.val)
    sub = load("mnist", data_root=root, val_size=10, split_seed=0, train_subset=5, test_subset=3)
    assert ids(sub.val) == ids(s.val) and len(ids(sub.train)) == 5 and set(ids(sub.train)) <= set(ids(s.train))
    assert len(sub.test.labels) == 3
    assert ids(load("mnist", data_root=root, split_seed=4, test_subset=3).test) == ids(sub.test)


@pytest.mark.parametrize("kwargs, key", [
    ({"val_size": 1.5}, "val_size"), ({"val_size": -1}, "val_size"), ({"val_size": 50}, "val_size"),
    ({"train_subset": -1}, "train_subset"), ({"test_subset": 0}, "test_subset"), ({"image_size": -3}, "image_size"),
])
def test_invalid_arguments(tmp_path, kwargs, key):
    write_idx(tmp_path / "mnist")
    with pytest.raises(ConfigError) as err:
        load("mnist", data_root=str(tmp_path), **kwargs)
    assert err.value.key == key and key in str(err.value)


def test_unknown_dataset_lists_known():
    with pytest.raises(ConfigError, match="cifar10.*mnist"):
        load("svhn")


def test_harness_data_env_is_searched(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "env")
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "env"))
    assert search_paths("cifar10", str(tmp_path / "arg"))[:3] == [
        tmp_path / "arg", tmp_path / "env", tmp_path / "home" / ".cache" / "harness"]
    s = load("cifar10", val_size=0)
    assert s.info.source == str(tmp_path / "env" / "cifar-10-batches-py") and len(s.train.labels) == 15


def test_missing_dataset_message_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFound) as err:
        load("mnist", data_root=str(tmp_path / "arg"))
    message = str(err.value)
    for place in [tmp_path / "arg", tmp_path / "env", tmp_path / "home" / ".cache" / "harness",
                  Path("/usr/share/datasets/mnist"), tmp_path / "arg" / "MNIST" / "raw", tmp_path / "env" / "mnist"]:
        assert str(place) in message
    assert "--set data.download=true" in message and "train-images-idx3-ubyte" in message
    assert search_paths("mnist", str(tmp_path / "arg")) == [
        tmp_path / "arg", tmp_path / "env", tmp_path / "home" / ".cache" / "harness", Path("/usr/share/datasets/mnist")]


def test_missing_fashion_mnist_suggests_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(specs_module, "SYSTEM_DATASETS", tmp_path / "system")
    with pytest.raises(DatasetNotFound) as err:
        load("fashion_mnist")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "system" / "fashion-mnist") in message and str(tmp_path / "system" / "fashion_mnist") in message


def test_imagenet_folder_resized_center_cropped(tmp_path):
    red, green, blue, white = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
    for i in range(3):
        _bands(tmp_path / "imagenet" / "train" / "n01_cat" / f"c{i}.png", (red, green, blue))
        _bands(tmp_path / "imagenet" / "train" / "n02_dog" / f"d{i}.png", (blue, white, red))
    _bands(tmp_path / "imagenet" / "val" / "n02_dog" / "v0.png", (red, white, blue))  # val lacks n01_cat
    s = load("imagenet", data_root=str(tmp_path), val_size=2, image_size=4)
    assert s.train.images.shape == (4, 3, 4, 4) and s.val.images.shape == (2, 3, 4, 4)
    assert s.info.num_classes == 2 and s.info.image_size == (4, 4)
    for split in (s.train, s.val):
        # The 8x4 image's shorter side is already 4, so the center crop is exactly the middle band.
        for image, label in zip(split.images, split.labels):
            expected = green if label == 0 else white
            assert torch.equal(image, torch.tensor(expected, dtype=torch.uint8).view(3, 1, 1).expand(3, 4, 4))
    assert s.test.labels.tolist() == [1]  # numbered as in train/, not as val/'s only folder
    assert torch.equal(s.test.images[0], torch.full((3, 4, 4), 255, dtype=torch.uint8))


def write_pet(root, colors: dict, trainval: str, test: str) -> None:
    """Oxford-IIIT Pet's layout under ``root``: one banded JPEG per image id, and the two annotation
    lists (CLASS-ID SPECIES BREED-ID per line: ids are 1-based; species 1 = cat, 2 = dog)."""
    folder = root / "oxford-iiit-pet"
    for image_id, color in colors.items():
        _bands(folder / "images" / f"{image_id}.jpg", (color,) * 3, width_each=(8, 16, 8), height=16, fmt="JPEG")
    (folder / "annotations").mkdir()
    (folder / "annotations" / "trainval.txt").write_text(trainval)
    (folder / "annotations" / "test.txt").write_text(test)


def test_oxford_pet_layout(tmp_path):
    colors = {"Abyssinian_1": (200, 40, 40), "Abyssinian_2": (40, 200, 40), "beagle_1": (40, 40, 200),
              "beagle_2": (120, 120, 120), "Abyssinian_3": (10, 220, 90)}
    write_pet(tmp_path, colors, "Abyssinian_1 1 1 1\nbeagle_1 2 2 1\nAbyssinian_2 1 1 1\nbeagle_2 2 2 1\n",
              "Abyssinian_3 1 1 1\n")
    s = load("oxford_pet", data_root=str(tmp_path), val_size=0, image_size=8)
    assert s.train.images.shape == (4, 3, 8, 8) and s.test.images.shape == (1, 3, 8, 8)
    assert s.train.labels.tolist() == [0, 1, 0, 1] and s.test.labels.tolist() == [0] and s.info.num_classes == 37
    for image, image_id in zip(s.train.images, ["Abyssinian_1", "beagle_1", "Abyssinian_2", "beagle_2"]):
        expected = torch.tensor(colors[image_id], dtype=torch.int16).view(3, 1, 1)
        assert (image.short() - expected).abs().max() <= 3  # JPEG at quality 100 is near-lossless
    assert s.info.mean == (0.485, 0.456, 0.406)


def test_digits_from_sklearn():
    s = load("digits", val_size=0.1)
    assert len(s.train.labels) + len(s.val.labels) + len(s.test.labels) == 1797
    assert len(s.test.labels) == 360 and len(s.val.labels) == 144  # 20 % test (ceil), 10 % of the rest
    assert s.train.images.shape[1:] == (1, 8, 8) and s.info.num_classes == 10
    assert set(s.test.labels.tolist()) == set(range(10)) and s.train.images.max().item() == 255
    allowed = {round(v * 255 / 16) for v in range(17)}
    assert set(s.train.images.unique().tolist()) <= allowed
    # The test split does not move with split_seed.
    assert torch.equal(load("digits", split_seed=3).test.images, s.test.images)
    assert 0.2 < s.info.mean[0] < 0.4 and s.info.flip is False


@pytest.mark.needs_dataset("fashion_mnist")
@pytest.mark.skipif(not FASHION.is_dir(), reason=f"dataset-fashion-mnist is not installed in {FASHION} "
                    "(`make datasets` installs it with apt-get as root)")
def test_real_fashion_mnist_from_debian_package():
    s = load("fashion_mnist")
    assert len(s.train.labels) + len(s.val.labels) == 60000 and len(s.val.labels) == 6000
    assert s.test.images.shape == (10000, 1, 28, 28) and s.info.source == str(FASHION)
    assert torch.bincount(s.test.labels).tolist() == [1000] * 10
    mean = torch.cat([s.train.images, s.val.images]).float().div(255).mean().item()
    assert abs(mean - s.info.mean[0]) < 1e-3


# ---- DeviceLoader ----

def _split(n=10, channels=3, size=8, seed=0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8), torch.arange(n))


def _pixels(x):  # undo mean 0, std 1 normalization
    return (x * 255).round().to(torch.uint8)


def test_loader_full_epoch_each_sample_once():
    loader = DeviceLoader(_split(10), batch_size=4, seed=1)
    assert len(loader) == 3 and loader.num_samples == 10
    batches = list(loader.epoch(0))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(10))
    x, _ = batches[0]
    assert x.dtype == torch.float32 and x.shape == (4, 3, 8, 8)


def test_loader_deterministic_per_seed_and_epoch():
    split = _split(32)
    kw = dict(batch_size=8, crop_padding=2, flip=True, seed=5)
    first, resumed = DeviceLoader(split, **kw), DeviceLoader(split, **kw)
    for e in range(3):  # an uninterrupted run passes epochs 0..2 before 3
        list(first.epoch(e))
    a, b = list(first.epoch(3)), list(resumed.epoch(3))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    order = lambda loader, e: torch.cat([y for _, y in loader.epoch(e)]).tolist()
    assert order(first, 3) != order(first, 4)
    assert order(first, 3) != order(DeviceLoader(split, **{**kw, "seed": 6}), 3)


def test_loader_num_batches_is_prefix_of_epoch():
    loader = DeviceLoader(_split(30), batch_size=4, crop_padding=1, flip=True, seed=2)
    full, part = list(loader.epoch(7)), list(loader.epoch(7, num_batches=3))
    assert len(full) == 8 and len(part) == 3
    assert all(torch.equal(xp, xf) and torch.equal(yp, yf) for (xp, yp), (xf, yf) in zip(part, full))
    with pytest.raises(ConfigError):
        loader.epoch(0, num_batches=9)


def test_loader_indices_and_in_order_evaluation():
    split = _split(10)
    loader = DeviceLoader(split, batch_size=2, shuffle=False)
    xs, ys = zip(*loader.epoch(0))
    assert torch.cat(ys).tolist() == list(range(10))
    assert torch.equal(_pixels(torch.cat(xs)), split.images)  # no augmentation when not shuffling
    picked = torch.tensor([7, 3, 3, 0, 9])
    assert torch.cat([y for _, y in loader.epoch(0, indices=picked)]).tolist() == [7, 3, 3, 0, 9]
    assert torch.cat([y for _, y in loader.epoch(0, num_batches=1, indices=picked)]).tolist() == [7, 3]


def test_loader_flip_only_mirrors_whole_images():
    split = _split(64)
    x = torch.cat([x for x, _ in DeviceLoader(split, batch_size=16, flip=True, seed=0).epoch(0)])
    y = torch.cat([y for _, y in DeviceLoader(split, batch_size=16, flip=True, seed=0).epoch(0)])
    flipped = 0
    for image, label in zip(_pixels(x), y):
        original = split.images[label]
        if torch.equal(image, original.flip(-1)):
            flipped += 1
        else:
            assert torch.equal(image, original)
    assert 10 < flipped < 54  # about half of 64


def test_loader_crop_is_a_shifted_window_of_zero_padded_image():
    split, pad = _split(32, size=6), 2
    loader = DeviceLoader(split, batch_size=32, crop_padding=pad, seed=3)
    (x, y), = list(loader.epoch(0))
    shifted = 0
    for image, label in zip(_pixels(x), y):
        padded = torch.nn.functional.pad(split.images[label], (pad,) * 4)
        offsets = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(image, padded[:, dy:dy + 6, dx:dx + 6])]
        assert offsets, "every output must be some window of the padded image"
        shifted += (pad, pad) not in offsets
    assert shifted > 16  # 24 of 25 offsets move the image


def test_loader_normalization_and_formats():
    images = torch.tensor([10, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4).contiguous()
    split = Split(images, torch.tensor([0, 1]))
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.3)
    x, _ = next(DeviceLoader(split, 2, mean=mean, std=std, shuffle=False).epoch(0))
    for c, v in enumerate((10, 128, 255)):
        assert torch.allclose(x[:, c], torch.tensor((v / 255 - mean[c]) / std[c]), atol=1e-6)
    x, _ = next(DeviceLoader(split, 2, mean=mean, std=std, channels_last=True, dtype=torch.bfloat16).epoch(0))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError):
        DeviceLoader(split, 0)
    with pytest.raises(ConfigError):
        DeviceLoader(split, 2, mean=(0.1, 0.2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loader_on_cuda_deterministic():
    split = _split(100)
    loader = DeviceLoader(split, 32, device="cuda", crop_padding=2, flip=True, seed=1, channels_last=True)
    a, b = list(loader.epoch(2)), list(loader.epoch(2))
    assert all(x.is_cuda and torch.equal(x, xb) and torch.equal(y, yb) for (x, y), (xb, yb) in zip(a, b))
    assert sorted(torch.cat([y for _, y in a]).tolist()) == list(range(100))


# ---- epoch_order, the one-gather crop, resize on the device ----

def test_epoch_order_is_the_permutation_the_loader_visits():
    from harness.data.loader import epoch_order

    split = _split(37)  # labels are the sample indices
    order = epoch_order(37, seed=4, epoch=2)
    assert order.dtype == torch.int64 and sorted(order.tolist()) == list(range(37))
    for kw in ({}, {"crop_padding": 2, "flip": True}):  # augmentation draws after the permutation
        loader = DeviceLoader(split, batch_size=8, seed=4, **kw)
        assert torch.cat([y for _, y in loader.epoch(2)]).tolist() == order.tolist()
    assert epoch_order(37, seed=4, epoch=3).tolist() != order.tolist()
    assert epoch_order(37, seed=5, epoch=2).tolist() != order.tolist()


class _AdvancedIndexingLoader(DeviceLoader):
    """The loader's crop and flip as they were before the one-gather version: a 4-index gather."""

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
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad)) if pad else images
        batch = torch.arange(n, device=self.device)[:, None, None, None]
        channel = torch.arange(channels, device=self.device)[None, :, None, None]
        return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


@pytest.mark.parametrize("pad,flip", [(4, True), (4, False), (0, True), (1, True)])
def test_gather_crop_is_bit_identical_to_advanced_indexing(pad, flip):
    g = torch.Generator().manual_seed(0)
    for images in (torch.randint(0, 256, (50, 3, 32, 32), generator=g, dtype=torch.uint8),
                   torch.randint(0, 256, (50, 1, 6, 10), generator=g, dtype=torch.uint8)):  # not square
        split = Split(images, torch.arange(50))
        kw = dict(batch_size=16, crop_padding=pad, flip=flip, seed=9)  # 16 does not divide 50: a partial batch
        new, old = DeviceLoader(split, **kw), _AdvancedIndexingLoader(split, **kw)
        for epoch in (0, 1):
            for (xn, yn), (xo, yo) in zip(new.epoch(epoch), old.epoch(epoch), strict=True):
                assert torch.equal(xn, xo) and torch.equal(yn, yo)


def _cifar_pair(tmp_path, size):
    write_cifar10(tmp_path, per_batch=6, n_test=5)
    kw = dict(data_root=str(tmp_path), val_size=6, image_size=size)
    return load("cifar10", **kw), load("cifar10", resize_on_device=True, **kw)


@pytest.mark.parametrize("size", [80, 20])  # upsampling, and downsampling (where antialias acts)
def test_resize_on_device_matches_the_pre_resized_split(tmp_path, size):
    from harness.data.loader import resize

    resized, native = _cifar_pair(tmp_path, size)
    assert resized.info.image_size == native.info.image_size == (size, size)
    assert resized.info.stored_size == (size, size) and native.info.stored_size == (32, 32)
    assert native.train.images.shape == (24, 3, 32, 32) and resized.train.images.shape == (24, 3, size, size)
    assert torch.equal(native.train.labels, resized.train.labels)
    common = dict(mean=native.info.mean, std=native.info.std)
    for split in ("train", "test"):
        # resized before augmenting: the same crop (in pixels of the resized image) and flip as pre-resized
        for kw in (dict(shuffle=False), dict(shuffle=True, crop_padding=size // 8, flip=True, seed=3)):
            pre = DeviceLoader(getattr(resized, split), 7, **common, **kw)
            dev = DeviceLoader(getattr(native, split), 7, resize_to=size, **common, **kw)
            for (xp, yp), (xd, yd) in zip(pre.epoch(1), dev.epoch(1), strict=True):
                # On a CPU both run torch's uint8 bilinear kernel: the same bytes, so the same batch.
                assert torch.equal(xd, xp) and torch.equal(yp, yd)
    # The route a GPU takes (float interpolation, rounded): within one gray level of the load path's
    # uint8 kernel, whose fixed-point weights round some pixels to the neighbouring level.
    images = native.train.images
    float_route = resize(images, size, native_uint8=False)
    assert torch.equal(resize(images, size), resized.train.images)
    levels = (float_route.float() - resized.train.images.float()).abs()
    assert float_route.shape == (24, 3, size, size) and float_route.dtype == torch.uint8
    assert levels.max() <= 1 and 0 < (levels > 0).float().mean() < 0.5


def test_resize_on_device_stores_native_bytes(tmp_path):
    resized, native = _cifar_pair(tmp_path, 224)
    pre = DeviceLoader(resized.train, 8)
    dev = DeviceLoader(native.train, 8, crop_padding=28, flip=True, resize_to=224)  # Pöllot et al.'s 28 px
    assert dev.stored_bytes() == 24 * 3 * 32 * 32 + 24 * 8  # uint8 images + int64 labels
    assert pre.stored_bytes() == 24 * 3 * 224 * 224 + 24 * 8
    x, _ = next(dev.epoch(0))
    assert x.shape == (8, 3, 224, 224) and x.dtype == torch.float32
    assert DeviceLoader(native.train, 8, resize_to=32).resize_to is None  # already that size: no resize
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="resize_to"):
            DeviceLoader(native.train, 8, resize_to=bad)


def test_resize_on_device_is_ignored_for_variable_size_datasets(tmp_path):
    for i in range(3):
        _bands(tmp_path / "imagenet" / "train" / "n01_cat" / f"c{i}.png", ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    _bands(tmp_path / "imagenet" / "val" / "n01_cat" / "v0.png", ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    s = load("imagenet", data_root=str(tmp_path), val_size=1, image_size=4, resize_on_device=True)
    assert s.train.images.shape == (2, 3, 4, 4)  # decoded at 4 px: they differ in size, so resized on load
    assert s.info.image_size == s.info.stored_size == (4, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gather_crop_and_resize_on_cuda():
    split = _split(40, size=32)
    kw = dict(batch_size=16, crop_padding=4, flip=True, seed=2, device="cuda")
    for (xn, yn), (xo, yo) in zip(DeviceLoader(split, **kw).epoch(0), _AdvancedIndexingLoader(split, **kw).epoch(0),
                                  strict=True):
        assert torch.equal(xn, xo) and torch.equal(yn, yo)
    # on CUDA the resize takes the float route: within one gray level of the CPU's uint8 kernel
    cpu = torch.cat([x for x, _ in DeviceLoader(split, 16, shuffle=False, resize_to=96).epoch(0)])
    gpu = torch.cat([x for x, _ in DeviceLoader(split, 16, shuffle=False, resize_to=96, device="cuda").epoch(0)])
    assert gpu.shape == (40, 3, 96, 96) and ((gpu.cpu() - cpu) * 255).abs().max() <= 1 + 1e-3
