"""What a model may declare beyond ``forward``: its own training loss, and weights fitted on validation.

The Trainer checks ``isinstance`` against these, so a model says what it does by subclassing
(``class Ensemble(OwnLoss, nn.Module)``) rather than by having a method of the right name.

  OwnLoss           ``forward_train(x, y) -> (logits, loss)`` replaces cross-entropy on the
                    logits in the training step (ensembles train each member on its own loss)
  FitsOnValidation  ``fit_on_validation(val_loader) -> dict`` runs after each epoch's training,
                    before evaluation; the dict is logged with the epoch's metrics (a stack fits
                    its member weights on the validation split, so its val_acc is measured on the
                    data it was fitted on; test_acc is not)
"""
from __future__ import annotations

from abc import ABC, abstractmethod


class OwnLoss(ABC):
    @abstractmethod
    def forward_train(self, x, y) -> tuple:
        """(output as ``forward`` gives it, the loss to back-propagate) for a training batch."""


class FitsOnValidation(ABC):
    @abstractmethod
    def fit_on_validation(self, val_loader) -> dict:
        """Fit what the model fits on the validation split; return metrics to log (may be empty)."""
