"""``method: {name: kd, ...}``: knowledge distillation (Hinton et al. 2015) on the training loop's ``loss`` event.

    method:
      name: kd
      options:
        alpha: 0.7                 weight of the soft (teacher) term, in [0, 1]; 0 is plain training
        temperature: 4.0           T > 0, softening both distributions; the soft term is scaled by T^2
        teacher: {name: digits_cnn, options: {width: 0.5}}   any registered model and its options
        teacher_epochs: 4          epochs the teacher trains in setup (0: an untrained teacher)
        teacher_lr: 0.05           its SGD learning rate (momentum 0.9, constant)

The teacher is built from the model registry, for the run's dataset (its classes, channels and image
size), and trained in ``setup``, before the student's first epoch, on the run's own training batches
(``ctx.batches.epoch``: the same split, order and augmentation the student sees, never validation or
test), then frozen in eval mode. Why train it there: a distillation teacher must know the task, and a
plugin has no checkpoint store to load a pretrained one from; digits trains a teacher to about 95 %
validation accuracy in a few seconds, so every trial brings its own, reproducibly from its seed.
``teacher_epochs: 0`` keeps it untrained (the soft term then measures only the extra forward's cost).

Every batch the frozen teacher runs forward on the student's batch (inside the loop's autocast, no
gradient) and the loss becomes ``harness_kd.loss.kd_loss``: the loop's own cross-entropy weighted
1 - alpha plus alpha * T^2 * KL(teacher || student) at temperature T. What it costs is measured where
it is spent: the teacher's forward passes are inside each epoch's ``epoch_time_s``; its training is
not (setup runs before the first epoch) and is logged as ``teacher_train_time_s``. ``params`` and
``macs`` are the student's, the model a run deploys. At the end it logs the teacher's
``teacher_val_acc`` (what a reader compares the student's ``best_val_acc`` against) and
``teacher_test_acc`` (reported only). A retry from a checkpoint trains the teacher in setup again and
then restores the checkpoint's weights over it (``state_dict``), so a resumed trial distils from the
teacher it started with.

Every option is typed (its annotation) and range-checked in ``__init__``, the teacher's name and options
against the model registry: the driver builds the method to check a config, so a bad option is exit 2
before Ray starts.
"""
from __future__ import annotations

import time
from typing import Optional

import torch
import torch.nn.functional as F

from harness.errors import ConfigError, nearest
from harness.methods.base import TrainMethod
from harness.registry import MODELS, METHODS

from .loss import kd_loss

TEACHER_KEY = "method.options.teacher"
DEFAULT_TEACHER = {"name": "digits_cnn", "options": {"width": 0.5}}
DATASET_OPTIONS = ("num_classes", "in_channels", "image_size")  # set from the run's dataset, as for model.name


def check_teacher(teacher) -> tuple[str, dict]:
    """(name, options) of ``teacher: {name, options}``; ConfigError naming the key otherwise."""
    from harness import models

    if not isinstance(teacher, dict) or "name" not in teacher or set(teacher) - {"name", "options"}:
        raise ConfigError(TEACHER_KEY, teacher, "a mapping {name: <a registered model>, options: {...}}")
    name, options = teacher["name"], teacher.get("options") or {}
    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"{TEACHER_KEY}.name", name, "a registered model: one of " + ", ".join(MODELS.names())
                          + nearest(name, MODELS.names()))
    if not isinstance(options, dict):
        raise ConfigError(f"{TEACHER_KEY}.options", options, "a mapping of the teacher model's options")
    for option in DATASET_OPTIONS:
        if option in options:
            raise ConfigError(f"{TEACHER_KEY}.options.{option}", options[option],
                              "no value: the run's dataset sets it, as for the student")
    try:
        models.check_options(name, options)
    except ConfigError as e:  # the model registry names the option model.<option>
        key = e.key.removeprefix("model.options.").removeprefix("model.")
        raise ConfigError(f"{TEACHER_KEY}.options.{key}", e.value, e.valid) from None
    return name, dict(options)


@METHODS.register("kd")
class Distill(TrainMethod):
    """Knowledge distillation from a teacher trained in setup (Hinton et al. 2015)."""

    def __init__(self, alpha: float = 0.7, temperature: float = 4.0, teacher: Optional[dict] = None,
                 teacher_epochs: int = 4, teacher_lr: float = 0.05):
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError("method.options.alpha", alpha, "a number in [0, 1] (the soft term's weight)")
        if not temperature > 0:
            raise ConfigError("method.options.temperature", temperature, "a number > 0")
        if teacher_epochs < 0:
            raise ConfigError("method.options.teacher_epochs", teacher_epochs, "an int >= 0 (0: an untrained teacher)")
        if not teacher_lr > 0:
            raise ConfigError("method.options.teacher_lr", teacher_lr, "a number > 0")
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.teacher_name, self.teacher_options = check_teacher(DEFAULT_TEACHER if teacher is None else teacher)
        self.teacher_epochs, self.teacher_lr = teacher_epochs, float(teacher_lr)
        self.teacher = None
        self.metrics: dict = {}

    def setup(self, ctx) -> None:
        from harness import models
        from harness.train import evaluate

        channels, height = ctx.input_shape[0], ctx.input_shape[1]
        self.teacher = models.build(self.teacher_name, num_classes=ctx.num_classes, in_channels=channels,
                                    image_size=height, **self.teacher_options).to(ctx.device)
        start = time.perf_counter()
        if self.teacher_epochs:
            optimizer = torch.optim.SGD(self.teacher.parameters(), lr=self.teacher_lr, momentum=0.9, weight_decay=5e-4)
            self.teacher.train()
            for epoch in range(1, self.teacher_epochs + 1):
                for x, y in ctx.batches.epoch(epoch):
                    optimizer.zero_grad(set_to_none=True)
                    F.cross_entropy(self.teacher(x), y).backward()
                    optimizer.step()
        self.teacher.eval().requires_grad_(False)
        self.metrics = {"teacher_train_time_s": time.perf_counter() - start,
                        "teacher_val_acc": evaluate(self.teacher, ctx.val_loader, ctx.device)[0],
                        "teacher_test_acc": evaluate(self.teacher, ctx.test_loader, ctx.device)[0]}

    def loss(self, ctx, x, y, logits, loss):
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return kd_loss(logits, teacher_logits, y, self.alpha, self.temperature, hard=loss)

    def finish(self, ctx) -> dict:
        return dict(self.metrics)

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "metrics": dict(self.metrics)} if self.teacher is not None else {}

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("teacher") is not None and self.teacher is not None:
            self.teacher.load_state_dict(sd["teacher"])
            self.metrics = dict(sd.get("metrics") or self.metrics)
