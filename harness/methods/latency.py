"""The ``latency`` experiment: forward latency of a built (untrained) model, recorded as a trial's final metrics.

Reports never time anything (they read runs); a sweep row with ``method: {name: latency}`` builds
``model.name`` with ``model.options`` at ``data.dataset``'s nominal input shape and class count
(from the dataset registry: no data is read) and measures it with ``harness.latency.measure_latency``
on the trial's device with the trial's CPU threads (``train.threads``, else its share of the node).
Final metrics, per batch size B of ``batch_sizes``:
  latency_s_bB, latency_mean_s_bB, latency_std_s_bB, latency_min_s_bB, latency_max_s_bB, per_image_s_bB
and, with ``cached: true`` (models whose kernels are re-derived by torch.nn.utils.parametrize at every
forward), the same under ``parametrize.cached()`` with the prefix ``cached_``: the deployed model,
its derived kernels computed once. ``latency_threads`` is the intra-op thread count of the
measurement; the run's ``device`` and ``torch_version`` tags say where it ran. Counts (params,
macs, ...) are the model's, as a training trial's.
"""
from __future__ import annotations

from typing import Optional

from ..errors import ConfigError
from ..registry import EXPERIMENTS
from ..runner import Result, prepare
from .base import Experiment


def _per_batch(value, batch_sizes: list, key: str) -> list:
    """One int >= 0 per batch size: ``value`` itself, or ``value`` repeated for each (typed by Latency's
    annotations: an int or a list of ints)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * len(batch_sizes)
    if len(values) != len(batch_sizes) or any(v < 0 for v in values):
        raise ConfigError(f"method.options.{key}", value,
                          f"an integer >= 0, or a list of {len(batch_sizes)} (one per batch size)")
    return values


class LatencyRunner:
    """Builds the model once, then one ``run`` measures every batch size (one step, no training)."""

    def __init__(self, cfg, threads: Optional[int], batch_sizes: list, repeats: list, warmup: list, cached: bool):
        from .. import data, measure, models

        self.cfg, self.batch_sizes, self.repeats, self.warmup, self.cached = cfg, batch_sizes, repeats, warmup, cached
        self.device = prepare(cfg, threads)
        d = cfg.data
        self.input_shape, classes = data.nominal_shape(d.dataset, d.image_size, d.classes)
        self.build_kwargs = dict(num_classes=classes, in_channels=self.input_shape[0], image_size=self.input_shape[1],
                                 **cfg.model.options)
        self.model = models.build(cfg.model.name, **self.build_kwargs)
        self._counts = measure.profile(self.model, self.input_shape)
        self.model.to(self.device)
        self.final: dict = {}

    def _measure(self, prefix: str) -> dict:
        from ..latency import measure_latency

        out = {}
        for b, repeats, warmup in zip(self.batch_sizes, self.repeats, self.warmup):
            r = measure_latency(self.model, self.input_shape, b, repeats=repeats, warmup=warmup)
            for key in ("latency_s", "latency_mean_s", "latency_std_s", "latency_min_s", "latency_max_s",
                        "per_image_s"):
                out[f"{prefix}{key}_b{b}"] = r[key]
            out["latency_threads"] = r["threads"]
        return out

    def run(self, on_epoch=None) -> Result:
        if not self.final:  # a restored run measured already: its numbers stand
            from torch.nn.utils import parametrize

            metrics = self._measure("")
            if self.cached:
                with parametrize.cached():
                    metrics.update(self._measure("cached_"))
            self.final = metrics
            if on_epoch is not None:
                on_epoch(1, dict(metrics))
        return Result(metrics=dict(self.final), final={**self.final, **self.counts()})

    def state_dict(self) -> dict:
        return {"final": dict(self.final)}

    def load_state_dict(self, sd: dict) -> None:
        self.final = dict(sd["final"])

    def counts(self) -> dict:
        from ..runner import COUNT_KEYS

        return {k: self._counts[k] for k in COUNT_KEYS}

    def saved_model(self) -> dict:
        return {"name": self.cfg.model.name, "build_kwargs": self.build_kwargs,
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}


# builds model.name at the dataset's registered shape (harness.data.nominal_shape); reads no image
@EXPERIMENTS.register("latency", uses_dataset=False)
class Latency(Experiment):
    """Measure the forward latency of ``model`` at ``batch_sizes`` (see the module doc).

    Options: batch_sizes ([1]), repeats (10, or one per batch size), warmup (2, or one per batch
    size), cached (false: also time the model under parametrize.cached when true).
    """

    def __init__(self, batch_sizes: list[int] = (1,), repeats: int | list[int] = 10, warmup: int | list[int] = 2,
                 cached: bool = False):
        sizes = list(batch_sizes)
        if not sizes or any(b < 1 for b in sizes):
            raise ConfigError("method.options.batch_sizes", batch_sizes, "a non-empty list of positive integers")
        self.batch_sizes = sizes
        self.repeats = _per_batch(repeats, sizes, "repeats")
        if min(self.repeats) < 1:
            raise ConfigError("method.options.repeats", repeats, "an integer >= 1 (or one per batch size)")
        self.warmup = _per_batch(warmup, sizes, "warmup")
        self.cached = cached

    def runner(self, cfg, threads=None) -> LatencyRunner:
        return LatencyRunner(cfg, threads, self.batch_sizes, self.repeats, self.warmup, self.cached)
