"""train(cfg) -> results: one trial, from a RunConfig to per-epoch metrics and final counts.

Per epoch it reports (accuracies in percent, top-1 unless named):
  train_loss, train_acc   mean over the batches trained this epoch (augmented, train mode)
  val_acc                 on the held-out validation split (the one to select on)
  test_acc, test_acc5     on the test split, reported only, never selected on
  epoch_time_s            wall time of the epoch's training loop: taking each batch from the
                          device-resident split (or the streaming loader) and augmenting it,
                          forward, backward and optimizer step, ended by a device synchronize;
                          evaluation, logging and checkpointing are outside it (eval_time_s)
  images_per_s            images trained this epoch / epoch_time_s
  samples_seen            images trained so far, all epochs
  train_time_s            sum of epoch_time_s so far (the papers' "training time")
  lr, momentum            the optimizer's at the epoch's last step (after a per-iteration
                          schedule set that batch's lr): what the steps used
  batch_size              the loader's this epoch (after the training method's before_epoch);
                          sampling_ratio, batches: the sampler's choice
  data_time_s             the part of epoch_time_s the loop waited for its next batch (host time:
                          exact on CPU; on a GPU the loader's kernels run asynchronously and their
                          cost shows up in compute_time_s; streaming, the wait on the decoding workers)
  corrupt_skipped         streaming with data.skip_corrupt: unreadable images left out so far (this process)
  compute_time_s          epoch_time_s - data_time_s: forward, backward, optimizer step
A training method (``method:``, harness.methods.base) adds its own metrics to each epoch and the end;
its hooks and batch events (before_batch, loss, after_backward, after_step, before_eval) see a
MethodContext, not the Trainer. The batch loop holds no special case: a model's own training loss
(OwnLoss: ensembles train each member on its own loss), a per-iteration lr, fp16's unscaling and a
stack's validation fit (FitsOnValidation: member weights fitted on the validation split after each
epoch's training, before evaluation, so its val_acc is measured on the data it was fitted on;
test_acc is not) are built-in parts on those events (harness.methods.parts), chosen at setup, and
the loop calls only the events some part or the method overrides. ``check_owners`` (harness.owners)
refuses a method that sets what the schedule sets.
At the end (``Result.final``, harness.runner): params, macs, flops (= 2 x macs), nonzero_params,
binary_adds of the model at the dataset's input size, the epoch selected on validation, the
sampler's predicted time ratio and the method's finish().
``build_runner(cfg)`` returns the Trainer, or an experiment's own runner; both are harness.runner.Runner.
Where the splits live is ``data.loader`` resolved by harness.data.choose_loader: resident
(DeviceLoader; resized per batch on the device when ``data.resize_on`` resolves to device) or
stream (StreamLoader over class folders: the ImageNet recipe for training, resize and centre crop
for evaluation). Both keep one contract: the same order per (seed, epoch), ``num_batches``
prefixes, a settable ``batch_size``. ``train.precision`` is the autocast dtype (fp16 with a
GradScaler, on CUDA only).
Nothing here prints or talks to MLflow: the caller passes ``on_epoch(epoch, metrics)``, and
``on_data(tags, dataset)`` (the loader chosen, the dataset read: harness.tracking.TrialRun.log_data).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch

from . import data as datasets
from . import measure, models
from .config import RunConfig
from .errors import ConfigError
from .methods import base as methods_base, sampling
from .methods.base import EVENTS, BatchControl, MethodContext, TrainMethod
from .methods.parts import builtin_parts, forward_step
from .owners import check_owners
from .registry import EXPERIMENTS
from .runner import COUNT_KEYS, SELECTION_KEYS, OnEpoch, Result, Runner, prepare
from .schedules import build_scheduler


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the trial stops and is recorded FAILED."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # train.precision -> autocast dtype; fp32: none
OnData = Callable[[dict, dict], None]


@torch.no_grad()
def evaluate(model, loader, device, amp_dtype: Optional[torch.dtype] = None) -> tuple[float, float]:
    """(top-1 %, top-5 %) over a loader; nan for an empty split. ``amp_dtype``: train.precision's
    autocast dtype (None: fp32)."""
    if loader is None or loader.num_samples == 0:
        return math.nan, math.nan
    model.eval()
    top1 = top5 = 0
    for x, y in loader.epoch(0):
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
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

    def __init__(self, cfg: RunConfig, threads: Optional[int] = None, method: Optional[TrainMethod] = None,
                 on_data: Optional[OnData] = None):
        self.cfg = cfg
        t, d = cfg.train, cfg.data
        self.device = prepare(cfg, threads)
        if t.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision", "fp16", f"fp32 or bf16 on a {self.device.type} device "
                              "(fp16 autocast with a GradScaler needs CUDA)")
        self.amp_dtype = AMP_DTYPES.get(t.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        info = self._build_loaders(cfg, threads)
        self.input_shape = (info.channels, *info.image_size)
        self.build_kwargs = dict(num_classes=info.num_classes, in_channels=info.channels,
                                 image_size=info.image_size[0], **cfg.model.options)
        self.model = models.build(cfg.model.name, **self.build_kwargs)
        self.profile = measure.profile(self.model, self.input_shape)
        memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=memory_format)
        if on_data is not None:
            on_data(self.data_tags, self.dataset)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=t.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay, nesterov=t.nesterov)
        self.scheduler = build_scheduler(self.optimizer, t)
        self.ratios = sampling.schedule_from_config(cfg.sampler, t.epochs)
        self.state = EpochState()
        self.method = method if method is not None else methods_base.build_method(cfg.method.name,
                                                                                   cfg.method.options)
        check_owners(cfg, self.method)
        self.context = MethodContext(cfg=cfg, model=self.model, optimizer=self.optimizer,
                                     batches=BatchControl(self.train_loader), counts=self.profile,
                                     device=self.device, input_shape=self.input_shape,
                                     num_classes=info.num_classes, ratios=self.ratios,
                                     val_loader=self.val_loader, test_loader=self.test_loader, scaler=self.scaler)
        self.method.setup(self.context)
        # decided once: the step's forward, and per event the handlers that override it (built-in parts first)
        self.forward = forward_step(self.model)
        parts = builtin_parts(self.model, self.scheduler, self.scaler, self.optimizer, self.val_loader, self.method)
        self.events = {event: [h for part in (*parts, self.method) for h in part.handlers(event)] for event in EVENTS}

    def _build_loaders(self, cfg: RunConfig, threads: Optional[int]):
        """The three loaders of ``data.loader`` resolved against this device's budget; sets
        ``data_tags`` (harness.data.LoaderChoice's, the bytes held) and ``dataset`` (an MLflow input)."""
        t, d = cfg.train, cfg.data
        choice = datasets.choose_loader(d, datasets.budget_bytes(d, str(self.device)))
        val_size = int(d.val_size) if d.val_size >= 1 else d.val_size
        eval_batch = max(t.batch_size, 512)
        common = dict(device=self.device, channels_last=t.channels_last)
        if choice.loader == "stream":
            train, val, test, info = datasets.load_folders(d.dataset, d.data_root, val_size, d.split_seed,
                                                           d.train_subset, d.test_subset, d.classes)
            side = d.image_size or info.image_size[0]
            info = dataclasses.replace(info, image_size=(side, side))
            workers = datasets.workers_per_trial(d, threads or 1)
            common.update(mean=info.mean, std=info.std, image_size=side, num_workers=workers,
                          resize=d.eval_resize or round(side * 256 / 224), skip_corrupt=d.skip_corrupt,
                          decode_on_device=d.decode_on_device)
            # the ImageNet recipe when augmenting; without augmentation training sees the eval recipe, shuffled
            self.train_loader = datasets.StreamLoader(train, t.batch_size, train=d.augment, shuffle=True, seed=t.seed,
                                                      scale=tuple(d.crop_scale), flip=info.flip, **common)
            self.val_loader = datasets.StreamLoader(val, eval_batch, train=False, **common)
            self.test_loader = datasets.StreamLoader(test, eval_batch, train=False, **common)
            stored, sizes = 0, (len(train), len(val), len(test))
            labels = (train.labels, val.labels, test.labels)
        else:
            on_device = choice.resize_on == "device"
            self.splits = datasets.load(d.dataset, data_root=d.data_root, download=d.download, val_size=val_size,
                                        split_seed=d.split_seed, image_size=d.image_size, train_subset=d.train_subset,
                                        test_subset=d.test_subset, classes=d.classes, resize_on_device=on_device)
            info = self.splits.info
            common.update(mean=info.mean, std=info.std, resize_to=info.image_size[0] if on_device else None)
            self.train_loader = datasets.DeviceLoader(
                self.splits.train, t.batch_size, shuffle=True, seed=t.seed,
                crop_padding=(info.crop_padding if d.crop_padding is None else d.crop_padding) if d.augment else 0,
                flip=info.flip and d.augment, **common)
            self.val_loader = datasets.DeviceLoader(self.splits.val, eval_batch, shuffle=False, **common)
            self.test_loader = datasets.DeviceLoader(self.splits.test, eval_batch, shuffle=False, **common)
            loaders = (self.train_loader, self.val_loader, self.test_loader)
            stored, sizes = sum(l.stored_bytes() for l in loaders), tuple(l.num_samples for l in loaders)
            labels = (self.splits.train.labels, self.splits.val.labels, self.splits.test.labels)
        self.loader_choice = choice
        self.data_tags = {**choice.tags(), "stored_bytes": str(stored)}
        digest = hashlib.md5(repr((d.dataset, info.image_size, sizes)).encode())
        for y in labels:  # which samples, in which order: equal digests, equal splits
            digest.update(y.numpy().tobytes())
        self.dataset = {"name": d.dataset, "source": info.source, "digest": digest.hexdigest()[:16],
                        "splits": dict(zip(("train", "val", "test"), sizes)), "loader": choice.loader,
                        "image_size": info.image_size[0], "num_classes": info.num_classes}
        return info

    # -- checkpoints: model, optimizer, schedule, progress and RNG (the data order derives from
    #    (seed, epoch) inside the loader, so it needs no state of its own)
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "progress": vars(self.state).copy(),
                "scaler": self.scaler.state_dict(),
                "method": self.method.state_dict(), "batch_size": self.train_loader.batch_size,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.scheduler.load_state_dict(sd["scheduler"])
        self.state = EpochState(**sd["progress"])
        self.method.load_state_dict(sd.get("method", {}))
        if sd.get("scaler"):
            self.scaler.load_state_dict(sd["scaler"])
        self.train_loader.batch_size = sd.get("batch_size", self.cfg.train.batch_size)
        torch.set_rng_state(sd["torch_rng"])
        if sd["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(sd["cuda_rng"])

    def train_epoch(self, epoch: int) -> dict:
        extra = self.method.before_epoch(self.context, epoch) or {}
        ratio = self.ratios[epoch - 1]
        n_batches = sampling.batches_per_epoch(ratio, len(self.train_loader))
        group = self.optimizer.param_groups[0]
        lr, momentum = group["lr"], group.get("momentum", 0.0)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        data_time_s = 0.0
        _sync(self.device)
        start = time.perf_counter()
        batches = self.train_loader.epoch(epoch, num_batches=n_batches)
        ctx = self.context
        ctx.epoch, ctx.num_batches = epoch, n_batches
        before_batch, loss_events, after_backward, after_step = (self.events[e] for e in methods_base.BATCH_EVENTS)
        index = 0
        while True:
            fetch = time.perf_counter()
            try:
                x, y = next(batches)
            except StopIteration:
                break
            data_time_s += time.perf_counter() - fetch
            ctx.batch_index = index
            index += 1
            for event in before_batch:
                x, y = event(ctx, x, y)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                logits, loss = self.forward(x, y)
                for event in loss_events:
                    loss = event(ctx, x, y, logits, loss)
            self.optimizer.zero_grad(set_to_none=True)
            # fp16 scales the loss against underflow; disabled (fp32, bf16) these are backward() and step()
            self.scaler.scale(loss).backward()
            for event in after_backward:
                event(ctx)
            lr, momentum = group["lr"], group.get("momentum", 0.0)  # what this step uses: logged for the last
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for event in after_step:
                event(ctx)
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
            for event in self.events["before_eval"]:  # a stack fits its weights on val (Zheng's SC-CNN)
                metrics.update(event(self.context, epoch) or {})
            metrics["val_acc"], _ = evaluate(self.model, self.val_loader, self.device, self.amp_dtype)
            metrics["test_acc"], metrics["test_acc5"] = evaluate(self.model, self.test_loader, self.device,
                                                                 self.amp_dtype)
            metrics["eval_time_s"] = time.perf_counter() - start
            if self.loader_choice.loader == "stream":
                metrics["corrupt_skipped"] = sum(loader.corrupt_skipped for loader in
                                                 (self.train_loader, self.val_loader, self.test_loader))
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


def build_runner(cfg: RunConfig, threads: Optional[int] = None, on_data: Optional[OnData] = None) -> Runner:
    """The Trainer for ``cfg``, or, when ``method.name`` is an experiment (harness.registry.EXPERIMENTS),
    that experiment's own runner. The method is built here, once per trial, and handed on; ``on_data``
    gets the Trainer's loader tags and dataset (an experiment reads its data itself).

    It lives here rather than in harness.runner, which the runners import: harness stays free of
    import cycles."""
    method = methods_base.build_method(cfg.method.name, cfg.method.options)
    if cfg.method.name in EXPERIMENTS:
        return method.runner(cfg, threads=threads)
    return Trainer(cfg, threads=threads, method=method, on_data=on_data)


def train(cfg: RunConfig | dict, on_epoch: Optional[OnEpoch] = None, threads: Optional[int] = None) -> dict:
    """Train one trial (or run one experiment); its last epoch's metrics and its final numbers in one dict."""
    if isinstance(cfg, dict):
        cfg = RunConfig.from_dict(cfg)
    return build_runner(cfg, threads=threads).run(on_epoch).merged()
