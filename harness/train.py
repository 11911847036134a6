"""train(cfg) -> results: one trial, from a RunConfig to per-epoch metrics and final counts.

Per epoch it reports (accuracies in percent, top-1 unless named):
  train_loss, train_acc   mean over the batches trained this epoch (augmented, train mode)
  val_acc                 on the held-out validation split (the one to select on)
  test_acc, test_acc5     on the test split, reported only, never selected on
  epoch_time_s            wall time of the epoch's training loop: taking each batch from the
                          device-resident split and augmenting it, forward, backward and optimizer
                          step, ended by a device synchronize; evaluation, logging and
                          checkpointing are outside it (they are timed as eval_time_s)
  images_per_s            images trained this epoch / epoch_time_s
  samples_seen            images trained so far, all epochs
  train_time_s            sum of epoch_time_s so far (the papers' "training time")
  lr, momentum, batch_size  used in this epoch (after the training method's before_epoch);
                          sampling_ratio, batches: the sampler's choice
  data_time_s             the part of epoch_time_s spent taking and augmenting batches (host time:
                          exact on CPU; on a GPU the loader's kernels run asynchronously and their
                          cost shows up in compute_time_s)
  compute_time_s          epoch_time_s - data_time_s: forward, backward, optimizer step
A training method (``method:``, harness.methods.base) adds its own metrics to each epoch and the end;
its hooks see a MethodContext, not the Trainer. A model may declare (harness.models.base) its own
training loss (OwnLoss: ensembles train each member on its own loss) and weights fitted on the
validation split after each epoch's training, before evaluation (FitsOnValidation: a stack's member
weights, so its val_acc is measured on the data it was fitted on; test_acc is not).
At the end (``Result.final``, harness.runner): params, macs, flops (= 2 x macs), nonzero_params,
binary_adds of the model at the dataset's input size, the epoch selected on validation, the
sampler's predicted time ratio and the method's finish().
``build_runner(cfg)`` returns the Trainer, or an experiment's own runner; both are harness.runner.Runner.
Nothing here prints or talks to MLflow: the caller passes ``on_epoch(epoch, metrics)``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from . import data as datasets
from . import measure, models
from .config import RunConfig
from .methods import base as methods_base, sampling
from .methods.base import BatchControl, MethodContext, TrainMethod
from .models.base import FitsOnValidation, OwnLoss
from .runner import COUNT_KEYS, SELECTION_KEYS, OnEpoch, Result, Runner, prepare
from .schedules import build_scheduler


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the trial stops and is recorded FAILED."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model, loader, device, autocast: bool) -> tuple[float, float]:
    """(top-1 %, top-5 %) over a loader; nan for an empty split."""
    if loader is None or loader.num_samples == 0:
        return math.nan, math.nan
    model.eval()
    top1 = top5 = 0
    for x, y in loader.epoch(0):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        k = min(5, logits.shape[1])
        best = logits.topk(k, dim=1).indices
        hit = best == y[:, None]
        top1 += hit[:, 0].sum().item()
        top5 += hit.any(dim=1).sum().item()
    return 100.0 * top1 / loader.num_samples, 100.0 * top5 / loader.num_samples


@dataclass
class EpochState:
    """Progress that continues a run after ``epoch`` (with the weights, a checkpoint's content)."""

    epoch: int = 0
    samples_seen: int = 0
    train_time_s: float = 0.0
    best_val_acc: float = -math.inf  # selection happens on validation, never on test
    test_acc_at_best_val: float = math.nan
    best_epoch: int = 0


class Trainer:
    """Builds data, model, optimizer and schedule for a RunConfig; ``run`` trains it (a harness.runner.Runner).

    ``method`` is the trial's training method, built once by ``build_runner``; without it the
    Trainer builds the one ``cfg.method`` names."""

    def __init__(self, cfg: RunConfig, threads: Optional[int] = None, method: Optional[TrainMethod] = None):
        self.cfg = cfg
        t, d = cfg.train, cfg.data
        self.device = prepare(cfg, threads)
        val_size = int(d.val_size) if d.val_size >= 1 else d.val_size
        self.splits = datasets.load(d.dataset, data_root=d.data_root, download=d.download, val_size=val_size,
                                    split_seed=d.split_seed, image_size=d.image_size,
                                    train_subset=d.train_subset, test_subset=d.test_subset, classes=d.classes)
        info = self.splits.info
        self.input_shape = (info.channels, *info.image_size)
        self.build_kwargs = dict(num_classes=info.num_classes, in_channels=info.channels,
                                 image_size=info.image_size[0], **cfg.model.options)
        self.model = models.build(cfg.model.name, **self.build_kwargs)
        self.profile = measure.profile(self.model, self.input_shape)
        memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=memory_format)
        self.autocast = t.autocast and self.device.type == "cuda"
        common = dict(device=self.device, mean=info.mean, std=info.std, channels_last=t.channels_last)
        self.train_loader = datasets.DeviceLoader(
            self.splits.train, t.batch_size, shuffle=True, seed=t.seed,
            crop_padding=(info.crop_padding if d.crop_padding is None else d.crop_padding) if d.augment else 0,
            flip=info.flip and d.augment, **common)
        eval_batch = max(t.batch_size, 512)
        self.val_loader = datasets.DeviceLoader(self.splits.val, eval_batch, shuffle=False, **common)
        self.test_loader = datasets.DeviceLoader(self.splits.test, eval_batch, shuffle=False, **common)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=t.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay, nesterov=t.nesterov)
        self.scheduler = build_scheduler(self.optimizer, t)
        self.ratios = sampling.schedule_from_config(cfg.sampler, t.epochs)
        self.state = EpochState()
        self.method = method if method is not None else methods_base.build_method(cfg.method.name,
                                                                                   cfg.method.options)
        self.context = MethodContext(cfg=cfg, model=self.model, optimizer=self.optimizer,
                                     batches=BatchControl(self.train_loader), counts=self.profile,
                                     device=self.device, input_shape=self.input_shape,
                                     num_classes=info.num_classes, ratios=self.ratios,
                                     val_loader=self.val_loader, test_loader=self.test_loader)
        self.method.setup(self.context)

    # -- checkpoints: model, optimizer, schedule, progress and RNG (the data order derives from
    #    (seed, epoch) inside the loader, so it needs no state of its own)
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "progress": vars(self.state).copy(),
                "method": self.method.state_dict(), "batch_size": self.train_loader.batch_size,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.scheduler.load_state_dict(sd["scheduler"])
        self.state = EpochState(**sd["progress"])
        self.method.load_state_dict(sd.get("method", {}))
        self.train_loader.batch_size = sd.get("batch_size", self.cfg.train.batch_size)
        torch.set_rng_state(sd["torch_rng"])
        if sd["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(sd["cuda_rng"])

    def train_epoch(self, epoch: int) -> dict:
        extra = self.method.before_epoch(self.context, epoch) or {}
        ratio = self.ratios[epoch - 1]
        n_batches = sampling.batches_per_epoch(ratio, len(self.train_loader))
        lr = self.optimizer.param_groups[0]["lr"]
        momentum = self.optimizer.param_groups[0].get("momentum", 0.0)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        data_time_s = 0.0
        _sync(self.device)
        start = time.perf_counter()
        batches = self.train_loader.epoch(epoch, num_batches=n_batches)
        own_loss = isinstance(self.model, OwnLoss)  # a model with its own loss (ensembles)
        while True:
            fetch = time.perf_counter()
            try:
                x, y = next(batches)
            except StopIteration:
                break
            data_time_s += time.perf_counter() - fetch
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                if own_loss:
                    logits, loss = self.model.forward_train(x, y)
                else:
                    logits = self.model(x)
                    loss = F.cross_entropy(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            # accumulate on the device: no host sync per step
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.shape[0]
        _sync(self.device)
        epoch_time_s = time.perf_counter() - start
        self.scheduler.step()
        train_loss = loss_sum.item() / max(seen, 1)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"train_loss is {train_loss} in epoch {epoch} (lr={lr:g})")
        self.state.epoch = epoch
        self.state.samples_seen += seen
        self.state.train_time_s += epoch_time_s
        return {"train_loss": train_loss, "train_acc": 100.0 * correct.item() / max(seen, 1),
                "epoch_time_s": epoch_time_s, "images_per_s": seen / epoch_time_s,
                "samples_seen": self.state.samples_seen, "train_time_s": self.state.train_time_s,
                # the batch size used: one larger than the split trains on the whole split a step
                "lr": lr, "momentum": momentum,
                "batch_size": min(self.train_loader.batch_size, self.train_loader.num_samples),
                "sampling_ratio": ratio, "batches": n_batches,
                "data_time_s": data_time_s, "compute_time_s": epoch_time_s - data_time_s, **extra}

    def run(self, on_epoch: Optional[OnEpoch] = None) -> Result:
        """Train the remaining epochs; ``on_epoch(epoch, metrics)`` after each."""
        metrics: dict = {}
        for epoch in range(self.state.epoch + 1, self.cfg.train.epochs + 1):
            metrics = self.train_epoch(epoch)
            start = time.perf_counter()
            if isinstance(self.model, FitsOnValidation):  # a stack fits its weights on val (Zheng's SC-CNN)
                metrics.update(self.model.fit_on_validation(self.val_loader) or {})
            metrics["val_acc"], _ = evaluate(self.model, self.val_loader, self.device, self.autocast)
            metrics["test_acc"], metrics["test_acc5"] = evaluate(self.model, self.test_loader, self.device,
                                                                 self.autocast)
            metrics["eval_time_s"] = time.perf_counter() - start
            if not math.isnan(metrics["val_acc"]) and metrics["val_acc"] > self.state.best_val_acc:
                self.state.best_val_acc, self.state.best_epoch = metrics["val_acc"], epoch
                self.state.test_acc_at_best_val = metrics["test_acc"]
            metrics.update(self.method.after_epoch(self.context, epoch, metrics) or {})
            if on_epoch is not None:
                on_epoch(epoch, metrics)
        progress = asdict(self.state)
        best = {k: progress[k] for k in SELECTION_KEYS} if self.state.best_epoch else {}
        final = {**best, **self.counts(), **(self.method.finish(self.context) or {}),
                 "predicted_time_ratio": sampling.time_ratio(self.ratios)}
        return Result(metrics=metrics, final=final)

    def saved_model(self) -> dict:
        """What ``model.pt`` holds: enough to rebuild the trained model without the dataset."""
        return {"name": self.cfg.model.name, "build_kwargs": self.build_kwargs,
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}

    def counts(self) -> dict:
        return {k: self.profile[k] for k in COUNT_KEYS}


def build_runner(cfg: RunConfig, threads: Optional[int] = None) -> Runner:
    """The Trainer for ``cfg``, or, when ``method.name`` is an experiment (harness.methods.base.Experiment),
    that experiment's own runner. The method is built here, once per trial, and handed on.

    It lives here rather than in harness.runner, which the runners import: harness stays free of
    import cycles."""
    method = methods_base.build_method(cfg.method.name, cfg.method.options)
    if isinstance(method, methods_base.Experiment):
        return method.runner(cfg, threads=threads)
    return Trainer(cfg, threads=threads, method=method)


def train(cfg: RunConfig | dict, on_epoch: Optional[OnEpoch] = None, threads: Optional[int] = None) -> dict:
    """Train one trial (or run one experiment); its last epoch's metrics and its final numbers in one dict."""
    if isinstance(cfg, dict):
        cfg = RunConfig.from_dict(cfg)
    return build_runner(cfg, threads=threads).run(on_epoch).merged()
