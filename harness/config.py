"""The whole description of one trial: frozen dataclasses, type-checked and range-checked.

A trial's config flows one way (after nanoGPT's ``GPTConfig``): a sweep file or the command line
gives a nested dict, ``RunConfig.from_dict`` checks every key, type and range and raises
``ConfigError`` naming the key, the value and what would be valid, before any work starts.
This module is a leaf (it imports the registry, the errors and the YAML reader only, and fills no
registry that needs torch): what needs the built model or method, their options included, is checked by
``harness.checks.check_config``, which every driver path runs next.
Overrides are applied to the dict, never evaluated (``harness.yamlio``, a safe YAML loader, parses a value).
The resolved config is logged whole and hashed into ``config_digest``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

import yaml

from . import yamlio
from .errors import ConfigError, coerce
from .registry import DATASETS, SAMPLERS, SCHEDULES


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "cifar10"
    data_root: Optional[str] = None  # searched first; then $HARNESS_DATA, ~/.cache/harness, /usr/share/datasets
    download: bool = False  # fetch with torchvision when online
    val_size: float = 0.1  # held out of the training set: a fraction in [0, 1) or a count of samples
    split_seed: int = 0  # fixes the validation split, independent of the trial seed
    train_subset: Optional[int] = None  # samples kept of the training split (quick profiles); None = all
    test_subset: Optional[int] = None  # samples kept of the test split; None = all
    augment: bool = True  # the dataset's pad-and-crop / flip defaults, applied on the device
    image_size: Optional[int] = None  # resize variable-size datasets (pet, imagenet) to this side, pixels
    classes: Optional[int] = None  # keep the first N classes (labels 0..N-1) of every split; None = all
    crop_padding: Optional[int] = None  # pad-and-crop augmentation, pixels per side; None = the dataset's default
    # Where a split lives while it trains (harness.data.specs.choose_loader): resident = decoded once
    # into one uint8 tensor on the device; stream = class folders read and decoded per batch by
    # DataLoader workers (imagenet); auto = resident when the decoded splits fit resident_max_gb.
    loader: str = "auto"  # auto | resident | stream
    resident_max_gb: Optional[float] = None  # GB (1e9 bytes) the resident splits may take; None = from free memory
    num_workers: Optional[int] = None  # stream: decoding processes per trial; None = the trial's CPUs - 1
    skip_corrupt: bool = False  # stream: skip (and count) an unreadable image instead of failing on it
    decode_on_device: bool = False  # stream on CUDA: decode JPEGs with nvjpeg on the GPU
    resize_on: str = "auto"  # auto | load | device: resize fixed-size images per batch (auto: device when upsampled)
    crop_scale: Tuple[float, ...] = (0.08, 1.0)  # stream training: RandomResizedCrop's area range (the ImageNet recipe)
    eval_resize: Optional[int] = None  # stream evaluation: shorter side before the centre crop; None = side * 256/224


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet20"
    options: dict = field(default_factory=dict)  # passed to harness.models.build, checked by harness.checks


@dataclass(frozen=True)
class SamplerConfig:
    """Which samples each epoch trains on (Jiang Sec. 3.2); see harness.methods.sampling."""

    name: str = "full"  # a sampler of harness.registry.SAMPLERS: full | flat | three_stage
    alpha: Tuple[float, ...] = (1.0,)  # flat: (alpha,); three_stage: (alpha_1, alpha_21, alpha_3)
    gamma: Tuple[float, ...] = (1.0, 0.0, 0.0)  # three_stage: fraction of epochs in stages 1, 2, 3
    se: float = 1.0  # three_stage: squeeze ratio alpha_22 / alpha_21 of the bottleneck's internal epochs
    internal: int = 4  # three_stage: squeezed epochs per bottleneck (k in Figure 3.7)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128  # images per optimizer step
    lr: float = 0.1  # initial learning rate (after warm-up)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: str = "multistep"  # multistep | cosine | cosine_iter | constant (harness.schedules)
    milestones: Tuple[int, ...] = ()  # multistep: epochs after which lr *= lr_decay
    lr_decay: float = 0.1  # multistep factor
    warmup_epochs: int = 0  # linear warm-up from lr * warmup_start over these epochs
    warmup_start: float = 0.1  # first warm-up epoch's fraction of lr
    seed: int = 0  # model init, data order and augmentation
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    channels_last: bool = True  # memory format of activations; faster on CPU and tensor-core GPUs
    precision: str = "fp32"  # fp32 | bf16 | fp16: torch.autocast dtype of forward passes (fp16: CUDA only, GradScaler)
    system_metrics: bool = False  # log MLflow's system metrics (CPU, memory, GPU) while the trial trains
    threads: Optional[int] = None  # torch intra-op threads on CPU; None = the trial's CPUs
    save_model: bool = False  # log the trained weights as the run's model.pt artifact


@dataclass(frozen=True)
class MethodConfig:
    """What changes training between epochs (harness.methods.base): pruning, dynamic batch size, ..."""

    name: str = "none"  # a training method or an experiment (harness.registry); none = plain training
    options: dict = field(default_factory=dict)  # passed to the method's class, checked by harness.checks


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, d: dict | None) -> "RunConfig":
        cfg = _build(cls, d or {}, "")
        validate(cfg)
        return cfg

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def digest(self) -> str:
        """md5 of the resolved config, as ShrinkBench names runs: equal configs, equal digest."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.md5(text.encode()).hexdigest()[:16]


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _build(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(prefix.rstrip(".") or "config", d, "a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ConfigError(prefix + str(unknown[0]), d[unknown[0]],
                          "a key among " + ", ".join(prefix + n for n in names))
    kwargs = {}
    for name in names:
        if name not in d:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, d[name], prefix + name + ".")
        else:
            kwargs[name] = coerce(prefix + name, d[name], hint)
    return cls(**kwargs)


def _check(key: str, value, ok: bool, valid: str):
    if not ok:
        raise ConfigError(key, value, valid)


SEED_LIMIT = 2**64  # torch.manual_seed's range; numpy's SeedSequence refuses negative seeds
# Far past any protocol here (300 epochs, 299 px): a larger number is a typo that would exhaust
# memory or hang a trial (a list per epoch, a padded image), so it is refused with the others.
EPOCH_LIMIT, PIXEL_LIMIT, THREAD_LIMIT = 100_000, 4096, 1024


def validate(cfg: RunConfig) -> None:
    """Range checks that need no data, model or Ray: everything a typo can break. Sizes are checked
    against the dataset's registered official splits (``nominal_size`` in harness.data.specs); a
    smaller copy on disk is found when a trial reads it. Dataset, schedule and sampler names are looked
    up in registries whose modules import no torch, and the sampler checks the settings it reads."""
    d, t, s = cfg.data, cfg.train, cfg.sampler
    DATASETS.get(d.dataset)
    _check("data.val_size", d.val_size, d.val_size >= 0 and (d.val_size < 1 or float(d.val_size).is_integer()),
           "a fraction in [0, 1) or a whole number of samples")
    for key in ("train_subset", "test_subset", "image_size", "classes"):
        v = getattr(d, key)
        _check(f"data.{key}", v, v is None or v > 0, "a positive integer or null")
    _check("data.image_size", d.image_size, d.image_size is None or d.image_size <= PIXEL_LIMIT,
           f"at most {PIXEL_LIMIT} pixels, or null")
    _check("data.crop_padding", d.crop_padding, d.crop_padding is None or 0 <= d.crop_padding <= PIXEL_LIMIT,
           f"an integer in [0, {PIXEL_LIMIT}] (pixels per side) or null (the dataset's default)")
    _check("data.split_seed", d.split_seed, 0 <= d.split_seed < SEED_LIMIT, "an integer in [0, 2**64)")
    _validate_loader(d)
    meta = DATASETS.meta(d.dataset)
    train_size, classes = meta["train_size"], meta["shape"][2]
    if train_size is not None:  # None: the folders on disk decide (ImageNet), known when a trial reads them
        _check("data.classes", d.classes, d.classes is None or d.classes <= classes,
               f"at most the {classes} classes of {d.dataset}, or null")
        _check("data.val_size", d.val_size, _held_out(d, train_size) < train_size,
               f"fewer than the {train_size} samples in the training split of {d.dataset}")
    _check("train.epochs", t.epochs, 0 < t.epochs <= EPOCH_LIMIT, f"an integer > 0 (at most {EPOCH_LIMIT})")
    _check("train.batch_size", t.batch_size, t.batch_size > 0, "an integer > 0")
    _check("train.lr", t.lr, t.lr > 0 and math.isfinite(t.lr), "a finite number > 0")
    _check("train.momentum", t.momentum, 0 <= t.momentum < 1, "a number in [0, 1)")
    _check("train.weight_decay", t.weight_decay, t.weight_decay >= 0, "a number >= 0")
    _check("train.nesterov", t.nesterov, not t.nesterov or t.momentum > 0, "false when momentum is 0")
    SCHEDULES.get(t.schedule)
    _check("train.milestones", list(t.milestones), all(0 < m <= t.epochs for m in t.milestones)
           and list(t.milestones) == sorted(t.milestones), f"increasing epochs in [1, {t.epochs}]")
    _check("train.lr_decay", t.lr_decay, 0 < t.lr_decay <= 1, "a number in (0, 1]")
    _check("train.warmup_epochs", t.warmup_epochs, 0 <= t.warmup_epochs < t.epochs, f"an integer in [0, {t.epochs})")
    _check("train.warmup_start", t.warmup_start, 0 < t.warmup_start <= 1, "a number in (0, 1]")
    _check("train.device", t.device, re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", t.device) is not None,
           "auto, cpu, cuda or cuda:N")
    _check("train.seed", t.seed, 0 <= t.seed < SEED_LIMIT, "an integer in [0, 2**64)")
    _check("train.precision", t.precision, t.precision in PRECISIONS, "one of " + ", ".join(PRECISIONS))
    _check("train.precision", t.precision, not (t.precision == "fp16" and t.device == "cpu"),
           "fp32 or bf16 on train.device=cpu (fp16 autocast with a GradScaler needs CUDA)")
    _check("train.threads", t.threads, t.threads is None or 0 < t.threads <= THREAD_LIMIT,
           f"an integer in [1, {THREAD_LIMIT}] or null")
    # every sampler setting is range-checked, also those its sampler ignores: a typo is never silent
    sampler = SAMPLERS.get(s.name)
    _check("sampler.alpha", list(s.alpha), all(0 < a <= 1 for a in s.alpha), "sampling ratios in (0, 1]")
    _check("sampler.gamma", list(s.gamma), len(s.gamma) == 3 and all(g >= 0 for g in s.gamma)
           and abs(sum(s.gamma) - 1) <= 1e-6, "three fractions >= 0 that sum to 1")
    _check("sampler.se", s.se, 0 < s.se <= 1, "a squeeze ratio in (0, 1]")
    _check("sampler.internal", s.internal, 1 <= s.internal <= EPOCH_LIMIT, f"an integer in [1, {EPOCH_LIMIT}]")
    sampler(s, t.epochs)  # what only this sampler needs (one ratio for flat, three for three_stage)
    for key in ("num_classes", "in_channels", "image_size"):
        _check(f"model.options.{key}", cfg.model.options.get(key), key not in cfg.model.options,
               "unset: the dataset decides it (data.image_size resizes)")


LOADERS, RESIZE_ON, PRECISIONS = ("auto", "resident", "stream"), ("auto", "load", "device"), ("bf16", "fp16", "fp32")
WORKER_LIMIT = 1024


def _validate_loader(d: DataConfig) -> None:
    meta = DATASETS.meta(d.dataset)
    streamable = [n for n in DATASETS.names() if DATASETS.meta(n).get("stream")]
    _check("data.loader", d.loader, d.loader in LOADERS, "one of " + ", ".join(LOADERS))
    _check("data.loader", d.loader, d.loader != "stream" or meta.get("stream", False),
           f"auto or resident: {d.dataset} is not a class-folder dataset (stream reads {', '.join(streamable)})")
    _check("data.resident_max_gb", d.resident_max_gb, d.resident_max_gb is None
           or (math.isfinite(d.resident_max_gb) and d.resident_max_gb > 0),
           "a number of GB > 0, or null (from free memory)")
    _check("data.num_workers", d.num_workers, d.num_workers is None or 0 <= d.num_workers <= WORKER_LIMIT,
           f"an integer in [0, {WORKER_LIMIT}] (0 = decode in the trial's own process), or null (the trial's CPUs - 1)")
    _check("data.resize_on", d.resize_on, d.resize_on in RESIZE_ON, "one of " + ", ".join(RESIZE_ON))
    _check("data.resize_on", d.resize_on, d.resize_on != "device" or not meta.get("stream", False),
           f"auto or load: {d.dataset}'s images have no one size to keep (they are resized as they are read)")
    _check("data.crop_scale", list(d.crop_scale),
           len(d.crop_scale) == 2 and 0 < d.crop_scale[0] <= d.crop_scale[1] <= 1,
           "two area fractions 0 < low <= high <= 1 (the ImageNet recipe: [0.08, 1.0])")
    _check("data.eval_resize", d.eval_resize, d.eval_resize is None or 0 < d.eval_resize <= PIXEL_LIMIT,
           f"a side in pixels in [1, {PIXEL_LIMIT}], or null (image side * 256/224)")


def _held_out(d: DataConfig, train_size: int) -> int:
    return int(d.val_size) if d.val_size >= 1 else round(d.val_size * train_size)


def apply_overrides(d: dict, sets: list[str] | dict) -> dict:
    """Return a copy of nested dict ``d`` with ``key.sub=value`` overrides; values are YAML scalars."""
    out = json.loads(json.dumps(d))
    items = sets.items() if isinstance(sets, dict) else [_split_set(s) for s in sets]
    for key, value in items:
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(key, value, f"a key below a mapping, but {p} is a value")
        node[leaf] = value
    return out


def _split_set(text: str, example: str = "train.epochs=5") -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError("--set", text, f"key=value, e.g. {example}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError("--set", text, f"key=value, e.g. {example}")
    try:
        value = yamlio.load(raw) if raw.strip() else None  # the sweep files' reader: 1e-9 is a number in both
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as e:  # ValueError: a date like 2020-13-45
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise ConfigError(key.strip(), raw, f"a YAML value such as 5, 0.1, true, [1, 2] ({problem})") from None
    if _cyclic(value):  # an anchor inside itself ("&a [*a]") loads as a list that contains itself
        raise ConfigError(key.strip(), raw, "a YAML value such as 5, 0.1, true, [1, 2] (an alias refers to itself)")
    return key.strip(), value


def _cyclic(value, inside: frozenset = frozenset()) -> bool:
    """Whether a loaded YAML value contains itself (only lists and mappings can)."""
    if not isinstance(value, (list, dict)):
        return False
    if id(value) in inside:
        return True
    inside = inside | {id(value)}
    return any(_cyclic(v, inside) for v in (value.values() if isinstance(value, dict) else value))


def deep_merge(a: dict, b: dict) -> dict:
    """b over a, recursively for mappings; lists and scalars of b replace a's."""
    out = dict(a)
    for k, v in (b or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def flatten(d: dict, prefix: str = "") -> dict:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}; lists stay values (logged as text)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
