"""harness.data.folders / stream / layout: class folders of real JPEGs streamed with the ImageNet recipe.

The trees here are written by the tests (4 classes x 6 JPEGs of 40x30 and 30x40 px); every image
has its own red value (10 apart) and a green gradient, so an image can be told from every other
after any resize, and the recipe's crops show in the pixels.
"""
from __future__ import annotations

import json

import pytest
import torch
from torchvision.io import decode_image, encode_jpeg, read_file
from torchvision.transforms.v2 import functional as TF

from harness.data import DeviceLoader, Split, load
from harness.data.folders import FolderSplit, load_folders, scan
from harness.data.layout import main as layout_main
from harness.data.layout import write_layout
from harness.data.stream import CorruptImage, StreamLoader, crop_box, resident_bytes, sample_draws
from harness.errors import ConfigError, DatasetNotFound

# torchvision 0.29 deprecates its image codecs in favour of torchcodec (not installed); they still work
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = ("n01_ant", "n02_bee", "n03_cat", "n04_dog")


def _jpeg(path, red: int, width: int = 40, height: int = 30):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = torch.empty(3, height, width, dtype=torch.uint8)
    image[0] = red
    image[1] = torch.linspace(0, 90, width).round().to(torch.uint8).expand(height, width)
    image[2] = 128
    path.write_bytes(encode_jpeg(image, quality=95).numpy().tobytes())


def _tree(root, per_class: int = 6, val_per_class: int = 2, classes=CLASSES):
    """root/train/<class>/i.jpg and root/val/<class>/i.jpg; one image in three is portrait."""
    k = 0
    for split, count in (("train", per_class), ("val", val_per_class)):
        for name in classes:
            for i in range(count):
                size = (30, 40) if i % 3 == 2 else (40, 30)
                _jpeg(root / split / name / f"{name}_{i}.jpg", red=(10 * k) % 250, width=size[0], height=size[1])
                k += 1
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp("data") / "imagenet")


@pytest.fixture(scope="module")
def train_split(tree):
    return scan(tree / "train")


def _loader(split, train=True, **kw):
    kw.setdefault("image_size", 16)
    kw.setdefault("resize", 18)
    return StreamLoader(split, kw.pop("batch_size", 5), "cpu", MEAN, STD, train, **kw)


def _all(batches):
    xs, ys = zip(*list(batches))
    return torch.cat(xs), torch.cat(ys)


def _pixels(x):  # undo the normalization: back to the 0..255 scale
    return x * (255 * torch.tensor(STD).view(1, 3, 1, 1)) + 255 * torch.tensor(MEAN).view(1, 3, 1, 1)


def test_scan_orders_and_labels_like_image_folder(tree, train_split):
    import torchvision

    reference = torchvision.datasets.ImageFolder(str(tree / "train"))
    assert list(train_split.paths) == [p for p, _ in reference.samples]
    assert train_split.labels.tolist() == reference.targets == [c for c in range(4) for _ in range(6)]
    assert train_split.classes == CLASSES and train_split.labels.dtype == torch.int64
    val = scan(tree / "val", classes=train_split.classes)
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_shapes_labels_and_eval_recipe(train_split):
    loader = _loader(train_split, train=False, batch_size=5, resize=20)
    batches = list(loader.epoch(0))
    assert len(loader) == len(batches) == 5 and [len(y) for _, y in batches] == [5, 5, 5, 5, 4]
    x, y = _all(batches)
    assert x.shape == (24, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, train_split.labels)  # evaluation keeps the split's order
    for i in (0, 2):  # a landscape and a portrait image: short side to 20, then the central 16 x 16
        image = decode_image(read_file(train_split.paths[i]))
        expected = TF.center_crop(TF.resize(image, 20, antialias=True), [16, 16]).float()
        assert torch.allclose(_pixels(x[i : i + 1])[0], expected, atol=1e-3)


def test_train_recipe_crops_resizes_and_flips(train_split):
    loader = _loader(train_split, batch_size=24, image_size=32, shuffle=False)
    x, _ = next(iter(loader.epoch(0)))
    assert x.shape == (24, 3, 32, 32)
    # the whole image (scale 1, its own aspect): the crop is the image resized, flipped or not by the draw
    whole = _loader(train_split, batch_size=24, image_size=12, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3), shuffle=False)
    x, _ = next(iter(whole.epoch(0)))
    image = decode_image(read_file(train_split.paths[0]))
    expected = TF.resize(image, [12, 12], antialias=True)
    if sample_draws(0, 0, 0)[-1] < 0.5:
        expected = expected.flip(-1)
    assert torch.allclose(_pixels(x[:1])[0], expected.float(), atol=1e-3)
    gradient = _pixels(x[:, 1:2]).mean(dim=(1, 2))  # green rises left to right, or right to left if flipped
    assert {bool(g[-1] > g[0]) for g in gradient} == {True, False}


def test_crop_box_is_random_resized_crops_box():
    for position in range(200):
        draws = sample_draws(3, 1, position)
        top, left, h, w = crop_box(30, 40, draws, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top <= 30 - h and 0 <= left <= 40 - w and h > 0 and w > 0
    # no try fits in a 1 x 100 strip at aspect <= 4/3: the fallback is the central crop of the widest aspect
    assert crop_box(3, 100, [0.99] * 41, (0.9, 1.0), (3 / 4, 4 / 3)) == (0, 48, 3, 4)


def test_deterministic_per_seed_epoch_and_worker_count(train_split):
    a = _all(_loader(train_split, seed=1).epoch(3))
    b = _all(_loader(train_split, seed=1, num_workers=2).epoch(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = _all(_loader(train_split, seed=1).epoch(4))
    assert not torch.equal(a[1], c[1]) and not torch.equal(a[0], c[0])


def test_order_equals_device_loaders(train_split):
    # labels 0..N-1 turn the label sequence into the sample order itself
    numbered = FolderSplit(train_split.paths, torch.arange(len(train_split)), train_split.classes)
    resident = DeviceLoader(Split(torch.zeros(24, 3, 1, 1, dtype=torch.uint8), torch.arange(24)), 5, seed=7)
    stream = _loader(numbered, seed=7)
    for epoch in (0, 5):
        expected = torch.cat([y for _, y in resident.epoch(epoch)])
        assert torch.equal(_all(stream.epoch(epoch))[1], expected)
        assert torch.equal(_all(stream.epoch(epoch, num_batches=2))[1], expected[:10])
    order = torch.tensor([3, 1, 4, 1, 5])
    assert _all(stream.epoch(0, indices=order))[1].tolist() == [3, 1, 4, 1, 5]
    with pytest.raises(ConfigError, match="num_batches"):
        stream.epoch(0, num_batches=6)
    with pytest.raises(ConfigError, match="indices"):
        stream.epoch(0, indices=torch.tensor([24]))


def test_prefix_batch_size_change_and_resume(train_split):
    loader = _loader(train_split, seed=2)
    full = list(loader.epoch(1))
    prefix = list(loader.epoch(1, num_batches=2))
    assert len(prefix) == 2 and all(torch.equal(p[0], f[0]) and torch.equal(p[1], f[1]) for p, f in zip(prefix, full))
    loader.batch_size = 7  # Zheng's DBS: the batch size changes between epochs, the order does not
    assert len(loader) == 4
    bigger = list(loader.epoch(1))
    assert [len(y) for _, y in bigger] == [7, 7, 7, 3]
    assert torch.equal(_all(bigger)[0], _all(full)[0]) and torch.equal(_all(bigger)[1], _all(full)[1])
    for _ in loader.epoch(2):  # a run that went on; a fresh loader resumed at epoch 3 sees the same batches
        pass
    fresh = _loader(train_split, seed=2, batch_size=7)
    went_on, resumed = list(loader.epoch(3)), list(fresh.epoch(3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(went_on, resumed))


def test_holds_paths_not_pixels(train_split):
    loader = _loader(train_split, channels_last=True)
    x, _ = next(iter(loader.epoch(0)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    for _ in loader.epoch(1):
        pass
    held = [v for obj in (loader, loader._files) for v in vars(obj).values() if isinstance(v, torch.Tensor)]
    assert held and max(t.numel() * t.element_size() for t in held) <= train_split.labels.numel() * 8
    arrays = {k: v.nbytes for k, v in vars(loader._files).items() if hasattr(v, "nbytes")}
    assert arrays == {"offsets": 8 * 25, "path_bytes": sum(len(p.encode()) for p in train_split.paths),
                      "labels": 8 * 24}  # the paths, their offsets and the labels: no pixels
    assert loader._files.path(23) == train_split.paths[23]
    assert resident_bytes(1_281_167, 3, 224, 224) == 1_281_167 * 3 * 224 * 224  # ImageNet's ~193 GB


def test_device_decode_path_gives_the_cpu_paths_batches(train_split):
    # decode_on_device is for CUDA (nvjpeg); its batched decode_jpeg(list) and per-image recipe run here on
    # the CPU, switched on after construction, so the path is exercised where no GPU is lent
    expected = _all(_loader(train_split, seed=4).epoch(2))
    loader = _loader(train_split, seed=4)
    loader.decode_on_device = loader._files.raw = True
    got = _all(loader.epoch(2))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_corrupt_image_named_or_skipped_and_counted(tmp_path):
    root = _tree(tmp_path / "imagenet", per_class=3, val_per_class=0, classes=CLASSES[:2])
    bad = root / "train" / CLASSES[1] / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a JPEG")
    split = scan(root / "train")
    for workers in (0, 2):
        with pytest.raises(CorruptImage, match="broken.jpg"):
            _all(_loader(split, train=False, num_workers=workers).epoch(0))
    loader = _loader(split, train=False, batch_size=7, skip_corrupt=True)
    batches = list(loader.epoch(0))
    assert [len(y) for _, y in batches] == [6] and loader.corrupt_skipped == 1
    list(loader.epoch(1))
    assert loader.corrupt_skipped == 2  # counted per read, as the metric the trainer logs
    for skip in (False, True):  # the device-decode path (run on the CPU, as above) names or skips it too
        raw = _loader(split, train=False, batch_size=7, skip_corrupt=skip)
        raw.decode_on_device = raw._files.raw = True
        if not skip:
            with pytest.raises(CorruptImage, match="broken.jpg"):
                _all(raw.epoch(0))
        else:
            assert [len(y) for _, y in raw.epoch(0)] == [6] and raw.corrupt_skipped == 1


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(DatasetNotFound, match="does not exist"):
        scan(tmp_path / "nowhere")
    (tmp_path / "blank" / "n01").mkdir(parents=True)
    (tmp_path / "blank" / "n01" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetNotFound, match=f"{tmp_path / 'blank'} has no images"):
        scan(tmp_path / "blank")
    _jpeg(tmp_path / "some" / "n01" / "a.jpg", 10)
    (tmp_path / "some" / "n02").mkdir()
    with pytest.raises(DatasetNotFound, match=f"empty class folders.*{tmp_path / 'some' / 'n02'}"):
        scan(tmp_path / "some")
    _jpeg(tmp_path / "val" / "n09_new" / "a.jpg", 10)
    with pytest.raises(DatasetNotFound, match="classes missing from training: n09_new"):
        scan(tmp_path / "val", classes=("n01",))


def test_bad_options(train_split):
    with pytest.raises(ConfigError, match="num_workers=-1"):
        _loader(train_split, num_workers=-1)
    with pytest.raises(ConfigError, match="batch_size=0"):
        _loader(train_split, batch_size=0)
    with pytest.raises(ConfigError, match="decode_on_device"):
        _loader(train_split, decode_on_device=True)
    with pytest.raises(ConfigError, match="scale"):
        _loader(train_split, scale=(0.5, 0.1))
    with pytest.raises(ConfigError, match="data.dataset"):
        load_folders("cifar10", None)


@pytest.mark.parametrize("kw", [dict(val_size=4), dict(val_size=0.25, split_seed=3, train_subset=9, test_subset=5),
                                dict(val_size=2, classes=2)])
def test_load_folders_holds_out_what_load_does(tree, kw):
    train, val, test, info = load_folders("imagenet", str(tree.parent), **kw)
    resident = load("imagenet", data_root=str(tree.parent), image_size=16, **kw)
    assert info.num_classes == resident.info.num_classes == len(train.classes)
    for streamed, held in ((train, resident.train), (val, resident.val), (test, resident.test)):
        assert torch.equal(streamed.labels, held.labels)
        # the same images, not only the same labels: every image's red value is its own
        x = _pixels(_all(_loader(streamed, train=False, batch_size=64, image_size=16, resize=16).epoch(0))[0])
        assert (x - held.images.float()).abs().amax() <= 4


def test_load_folders_pet_test_split(tmp_path):
    folder = tmp_path / "oxford-iiit-pet"
    ids = {"Abyssinian_1": 1, "Abyssinian_2": 1, "beagle_1": 2, "beagle_2": 2, "beagle_3": 2, "Abyssinian_3": 1}
    for k, image_id in enumerate(ids):
        _jpeg(folder / "images" / f"{image_id}.jpg", red=40 * k)
    (folder / "annotations").mkdir()
    lines = [f"{image_id} {label} 1 1" for image_id, label in ids.items()]
    (folder / "annotations" / "trainval.txt").write_text("\n".join(lines[:5]) + "\n")
    (folder / "annotations" / "test.txt").write_text(lines[5] + "\n")
    train, val, test, info = load_folders("oxford_pet", str(tmp_path), val_size=1)
    resident = load("oxford_pet", data_root=str(tmp_path), val_size=1, image_size=8)
    for streamed, held in ((train, resident.train), (val, resident.val), (test, resident.test)):
        assert torch.equal(streamed.labels, held.labels)
    assert [p.rsplit("/", 1)[1] for p in test.paths] == ["Abyssinian_3.jpg"]
    assert info.num_classes == 2 and train.classes == ("Abyssinian", "Beagle")


def test_layout_writes_a_tree_scan_reads(tmp_path):
    _jpeg(tmp_path / "data" / "train" / "n01" / "a.jpg", 10)
    out = write_layout(tmp_path / "imagenet", classes=2, per_class=3, val_per_class=1, size=(24, 20), seed=0)
    train, val = scan(out / "train"), scan(out / "val", classes=scan(out / "train").classes)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and val.labels.tolist() == [0, 1]
    assert decode_image(read_file(train.paths[0])).shape == (3, 20, 24)
    assert json.loads((out / "layout.json").read_text()) == {"classes": 2, "per_class": 3, "val_per_class": 1,
                                                              "size": [24, 20], "seed": 0, "quality": 90,
                                                              "complete": True}
    before = train.paths[0]
    stamp = (out / "train" / train.classes[0]).stat().st_mtime_ns
    assert layout_main(["--out", str(out), "--classes", "2", "--per-class", "3", "--val-per-class", "1",
                        "--size", "24x20"]) == out
    assert (out / "train" / train.classes[0]).stat().st_mtime_ns == stamp and scan(out / "train").paths[0] == before
    x, y = next(iter(_loader(train, batch_size=6).epoch(0)))
    assert x.shape == (6, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(FileExistsError, match="other parameters"):
        write_layout(out, classes=3, per_class=3, val_per_class=1, size=(24, 20))
    with pytest.raises(FileExistsError, match="not a generated layout"):
        write_layout(tmp_path / "data", classes=2, per_class=1)  # a tree it did not write is never touched
