"""The distillation loss of Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network" (2015).

    loss = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The T^2 keeps the soft term's gradients on the scale of the hard term's as T changes (the paper, Sec. 2:
the soft targets' gradients scale as 1/T^2). KL is summed over classes and averaged over the batch
(``batchmean``, the mathematical KL divergence). Torch only: it imports nothing of harness.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def soft_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch, in fp32."""
    student = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return temperature ** 2 * F.kl_div(student, teacher, reduction="batchmean", log_target=True)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, alpha: float,
            temperature: float, hard: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(1 - alpha) * hard + alpha * soft_term; ``hard`` defaults to the cross-entropy of the student's
    logits with ``targets`` (the training loop passes the loss it has already computed)."""
    if hard is None:
        hard = F.cross_entropy(student_logits, targets)
    return (1 - alpha) * hard + alpha * soft_term(student_logits, teacher_logits, temperature)
