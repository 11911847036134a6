"""The whole description of one trial: frozen dataclasses, type-checked and range-checked.

A trial's config flows one way (after nanoGPT's ``GPTConfig``): a sweep file or the command line
gives a nested dict, ``RunConfig.from_dict`` checks every key, type and range and raises
``ConfigError`` naming the key, the value and what would be valid, before any work starts.
Overrides are applied to the dict, never evaluated (``yaml.safe_load`` parses a value).
The resolved config is logged whole and hashed into ``config_digest``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Optional, Tuple

import yaml

from .errors import ConfigError


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


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet20"
    options: dict = field(default_factory=dict)  # passed to harness.models.build, checked there


@dataclass(frozen=True)
class SamplerConfig:
    """Which samples each epoch trains on (Jiang Sec. 3.2); see harness.methods.sampling."""

    name: str = "full"  # full | flat | three_stage
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
    schedule: str = "multistep"  # multistep | cosine | constant (harness.train.SCHEDULES)
    milestones: Tuple[int, ...] = ()  # multistep: epochs after which lr *= lr_decay
    lr_decay: float = 0.1  # multistep factor
    warmup_epochs: int = 0  # linear warm-up from lr * warmup_start over these epochs
    warmup_start: float = 0.1  # first warm-up epoch's fraction of lr
    seed: int = 0  # model init, data order and augmentation
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    channels_last: bool = True  # memory format of activations; faster on CPU and tensor-core GPUs
    autocast: bool = True  # bf16 autocast, on GPU only
    threads: Optional[int] = None  # torch intra-op threads on CPU; None = the trial's CPUs
    save_model: bool = False  # log the trained weights as the run's model.pt artifact


@dataclass(frozen=True)
class MethodConfig:
    """What changes training between epochs (harness.methods.base): pruning, dynamic batch size, ..."""

    name: str = "none"  # a method registered with kind="train"; none = plain training
    options: dict = field(default_factory=dict)  # passed to the method's class, checked there


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


def _number(key: str, value, kind: type):
    """Accept ints for floats and 'p/q' fractions (gamma = 1/3); reject text and bools."""
    if isinstance(value, bool):
        raise ConfigError(key, value, f"a {kind.__name__}, not a boolean")
    if kind is float and isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(key, value, "a number (or a fraction such as 1/3)") from None
    if kind is float and isinstance(value, (int, float)):
        return float(value)
    if kind is int and isinstance(value, int):
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(key, value, f"an {kind.__name__}" if kind is int else f"a {kind.__name__}")


def _coerce(key: str, value, hint):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner)
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if hint in (int, float):
        return _number(key, value, hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "a string")
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, value, "a mapping of options")
        return dict(value)
    raise TypeError(f"unsupported config type {hint} for {key}")


def _build(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(prefix.rstrip(".") or "config", d, "a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ConfigError(prefix + unknown[0], d[unknown[0]], "a key among " + ", ".join(prefix + n for n in names))
    kwargs = {}
    for name in names:
        if name not in d:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, d[name], prefix + name + ".")
        else:
            kwargs[name] = _coerce(prefix + name, d[name], hint)
    return cls(**kwargs)


def _check(key: str, value, ok: bool, valid: str):
    if not ok:
        raise ConfigError(key, value, valid)


def validate(cfg: RunConfig) -> None:
    """Range checks that need no data, model or Ray: everything a typo can break."""
    from .registry import DATASETS, SCHEDULES
    from . import data as _data  # noqa: F401  (registers the datasets)
    from . import train as _train  # noqa: F401  (registers the schedules)
    from .methods import sampling

    d, t, s = cfg.data, cfg.train, cfg.sampler
    _check("data.dataset", d.dataset, d.dataset in DATASETS, "one of " + ", ".join(DATASETS.names()))
    _check("data.val_size", d.val_size, d.val_size >= 0 and (d.val_size < 1 or float(d.val_size).is_integer()),
           "a fraction in [0, 1) or a whole number of samples")
    for key in ("train_subset", "test_subset", "image_size", "classes"):
        v = getattr(d, key)
        _check(f"data.{key}", v, v is None or v > 0, "a positive integer or null")
    _check("data.crop_padding", d.crop_padding, d.crop_padding is None or d.crop_padding >= 0,
           "an integer >= 0 (pixels per side) or null (the dataset's default)")
    _check("train.epochs", t.epochs, t.epochs > 0, "an integer > 0")
    _check("train.batch_size", t.batch_size, t.batch_size > 0, "an integer > 0")
    _check("train.lr", t.lr, t.lr > 0 and math.isfinite(t.lr), "a finite number > 0")
    _check("train.momentum", t.momentum, 0 <= t.momentum < 1, "a number in [0, 1)")
    _check("train.weight_decay", t.weight_decay, t.weight_decay >= 0, "a number >= 0")
    _check("train.nesterov", t.nesterov, not t.nesterov or t.momentum > 0, "false when momentum is 0")
    _check("train.schedule", t.schedule, t.schedule in SCHEDULES, "one of " + ", ".join(SCHEDULES.names()))
    _check("train.milestones", list(t.milestones), all(0 < m <= t.epochs for m in t.milestones)
           and list(t.milestones) == sorted(t.milestones), f"increasing epochs in [1, {t.epochs}]")
    _check("train.lr_decay", t.lr_decay, 0 < t.lr_decay <= 1, "a number in (0, 1]")
    _check("train.warmup_epochs", t.warmup_epochs, 0 <= t.warmup_epochs < t.epochs, f"an integer in [0, {t.epochs})")
    _check("train.warmup_start", t.warmup_start, 0 < t.warmup_start <= 1, "a number in (0, 1]")
    _check("train.device", t.device, t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:"),
           "auto, cpu, cuda or cuda:N")
    _check("train.threads", t.threads, t.threads is None or t.threads > 0, "a positive integer or null")
    sampling.schedule_from_config(s, t.epochs)  # raises ConfigError on a bad alpha, gamma, se
    from . import models

    for key in ("num_classes", "in_channels", "image_size"):
        _check(f"model.options.{key}", cfg.model.options.get(key), key not in cfg.model.options,
               "unset: the dataset decides it (data.image_size resizes)")
    models.check_options(cfg.model.name, cfg.model.options)
    from .methods import base

    base.build_method(cfg.method.name, cfg.method.options)  # a bad option fails here, before Ray starts


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


def _split_set(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError("--set", text, "key=value, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


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
