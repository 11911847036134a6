"""What a Tune trial drives: the ``Runner`` protocol, the ``Result`` of a run, and the set-up every runner shares.

A runner is the classification ``harness.train.Trainer`` or an experiment's own loop (Çallı's
pruning cycles, ...); ``harness.train.build_runner(cfg, threads)`` returns the one a config asks
for, and ``harness.trial`` talks to nothing else:

  run(on_epoch) -> Result     trains what is left; ``on_epoch(epoch, metrics)`` after each epoch
                              (an experiment's step: a pruning cycle, say)
  state_dict() / load_state_dict(sd)   a checkpoint: a fresh runner loaded with it continues the
                              run as if it had never stopped
  counts() -> dict            the model's size (COUNT_KEYS: what a runner measures of it)
  saved_model() -> dict       what ``model.pt`` holds: enough to rebuild the trained model

``Result.metrics`` is the last epoch's metrics; ``Result.final`` what the run has once, at its end
(logged at MLflow step 0): of FINAL_METRICS the counts, the selection on validation and the
sampler's predicted time ratio, and the training method's own ``finish()`` numbers.

This module imports no other harness module, so the runners (``harness.train``, the experiments
in ``harness.methods``) can all share it without an import cycle.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, runtime_checkable

# the model's size as measured at set-up (harness.measure.profile's totals); an experiment whose
# network is not an image model may report a subset (params, macs, flops)
COUNT_KEYS = ("params", "macs", "flops", "nonzero_params", "binary_adds")
# the epoch selected on the validation split (never on test), and that epoch's test accuracy
SELECTION_KEYS = ("best_val_acc", "test_acc_at_best_val", "best_epoch")
# every name a runner itself puts in Result.final (a training method's finish() adds its own);
# predicted_time_ratio is the sampler's Corollary 1-2 estimate of the time against full sampling
FINAL_METRICS = COUNT_KEYS + SELECTION_KEYS + ("predicted_time_ratio",)

OnEpoch = Callable[[int, dict], None]


@dataclass
class Result:
    metrics: dict  # the last epoch's (or step's) metrics
    final: dict  # what the run has once, at its end: those of FINAL_METRICS it has, the method's finish()

    def merged(self) -> dict:
        """Both in one dict, the final numbers winning: what ``harness.train.train`` returns."""
        return {**self.metrics, **self.final}


@runtime_checkable
class Runner(Protocol):
    def run(self, on_epoch: Optional[OnEpoch] = None) -> Result: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, sd: dict) -> None: ...

    def counts(self) -> dict: ...

    def saved_model(self) -> dict: ...


def resolve_device(name: str):
    """``train.device`` as a torch.device; "auto" is the GPU when one is visible."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name!r} but no CUDA device is visible to this trial")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare(cfg, threads: Optional[int] = None):
    """The set-up every runner starts with, in this order: the device, the CPU thread count
    (``train.threads``, else the trial's share ``threads``), the seeds. Returns the device."""
    import torch

    t = cfg.train
    device = resolve_device(t.device)
    if device.type == "cpu" and (t.threads or threads):
        torch.set_num_threads(t.threads or threads)
    seed_everything(t.seed)
    return device
