"""Zheng, Wang & Gupta's models: AlexNet for 28x28, ConvPool-CNN-C, All-CNN-C and the stacked SC-CNN.

alexnet_fmnist  The paper trains "AlexNet" on 28x28 Fashion-MNIST without giving its adaptation
    (the registered ``alexnet`` keeps the 11x11 stem); ours keeps AlexNet's five convs and three
    linear layers with torchvision's widths 64-192-384-256-256 and 4096-4096 hidden units, shrinks
    the 11x11 / 5x5 kernels to 5x5 / 3x3 (so four of the five convs are 3x3 stride 1, Winograd's
    case), uses three 2x2 max-pools (28 -> 14 -> 7 -> 3) and puts BN after every conv (Sec. 4: "batch
    normalization is applied"). ``dropout`` follows every conv block only, as Sec. 4.1 places it: "A
    dropout rate of 0.2 ... is used in convolutional layers" (0.2 for the C-CNN, 0 in stacks).
    ``head_dropout`` follows the two hidden linear layers: 0 by default, as the paper names none there
    (before issue 27 ``dropout`` applied there too; docs/fidelity.md, Zheng).
convpool_cnn, all_cnn  ConvPool-CNN-C and All-CNN-C of Springenberg et al. (2014), Table 2 there:
    3x3 convs of 96, 96, 96, (3x3/2 max-pool | 3x3 conv stride 2), 192, 192, 192, (pool | conv/2),
    3x3 192, 1x1 192, 1x1 classes, global average pooling. Ours adds BN after every conv but the
    last (the paper applies BN to all models), pads every 3x3 conv and pool by 1 (the original's
    valid 3x3 conv would leave nothing of 8x8 digits), and puts ``dropout`` after both
    downsampling stages, where Springenberg et al. put theirs.
sc_cnn  The weighted-average stack of Figure 1: ``base`` (the C-CNN: alexnet_fmnist, vgg16,
    resnet32, ...), convpool_cnn and all_cnn. ``width`` scales all three; ``member_width`` scales the
    two Springenberg members further (they are built at width x member_width). Sec. 5.1 calls them
    "considerably less complicated than VGG and ResNet but have similar perplexity as AlexNet", and
    the paper's stacked times are 3.21x / 2.19x / 1.79x its single nets' (Tables 1, 3, 5, Overall); at
    member_width 1 our stacks have 4.41x / 3.08x / 11.05x their base's MACs. The sweep files set the
    member width on a 1/16 grid whose stack/base MACs come nearest the paper's time ratio (13/16, 3/4,
    1/4; docs/fidelity.md); the default 1 is Springenberg et al.'s full ConvPool-/All-CNN-C.
    Each member is trained on the whole training set with its own cross-entropy: the training loss
    is the sum of the members' losses (disjoint parameters, so each gets exactly its own gradient;
    ``forward_train``). The output is
    log(Σ_i W_i softmax(z_i)), the log of the weighted mean of the members' probabilities.
    W_1..W_3 are fitted on the validation split after every epoch (``fit_on_validation``: the stack is a
    FitsOnValidation of harness.models.base, which the Trainer calls before it evaluates): W = softmax(a),
    a minimizing the validation negative log-likelihood of the stacked probabilities (L-BFGS on the
    three logits a; W >= 0 and Σ W = 1 by construction). The paper says only "the best-weighted
    average". The weights are logged as ``stack_w1`` .. ``stack_w3`` each epoch.
"""
from __future__ import annotations

import inspect
import json

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .base import FitsOnValidation, OwnLoss
from .common import init_weights, round_channels

ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
ALEXNET_HIDDEN = 4096
SPRINGENBERG_CHANNELS = (96, 192)
STACK_MEMBERS = ("convpool_cnn", "all_cnn")  # beside the base C-CNN


def _width(width: float) -> float:  # ranges only: the builders' annotations type their options
    if not width > 0:
        raise ConfigError("model.width", width, "a number > 0 (channel multiplier)")
    return float(width)


def _dropout(dropout: float) -> float:
    if not 0 <= dropout < 1:
        raise ConfigError("model.dropout", dropout, "a probability in [0, 1)")
    return float(dropout)


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, batch_norm: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=not batch_norm),
            *([nn.BatchNorm2d(cout)] if batch_norm else []), nn.ReLU(inplace=True)]


@MODELS.register("alexnet_fmnist", family="zheng")
def alexnet_fmnist(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, width: float = 1.0,
                   dropout: float = 0.2, head_dropout: float = 0.0) -> nn.Module:
    """AlexNet adapted to 28x28 (5x5 + four 3x3 convs with BN, three 2x2 pools, 4096-4096 head)."""
    width, dropout = _width(width), _dropout(dropout)
    head = [nn.Dropout(_dropout(head_dropout))] if head_dropout else []
    if image_size < 8:
        raise ConfigError("model.image_size", image_size, "an integer >= 8 (three 2x2 max-pools)")
    c = [round_channels(ch, width) for ch in ALEXNET_CHANNELS]
    hidden = round_channels(ALEXNET_HIDDEN, width)
    drop = [nn.Dropout(dropout)] if dropout else []
    layers: list[nn.Module] = [*_conv_bn_relu(in_channels, c[0], 5), *drop, nn.MaxPool2d(2),
                               *_conv_bn_relu(c[0], c[1], 3), *drop, nn.MaxPool2d(2)]
    for cin, cout in zip(c[1:4], c[2:5]):
        layers += [*_conv_bn_relu(cin, cout, 3), *drop]
    layers.append(nn.MaxPool2d(2))
    side = image_size // 8
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(c[4] * side * side, hidden), nn.ReLU(inplace=True), *head,
                               nn.Linear(hidden, hidden), nn.ReLU(inplace=True), *head, nn.Linear(hidden, num_classes))
    return init_weights(nn.Sequential(nn.Sequential(*layers), classifier))


def _springenberg(all_conv: bool, num_classes: int, in_channels: int, width: float, dropout: float,
                  batch_norm: bool) -> nn.Module:
    width, dropout = _width(width), _dropout(dropout)
    a, b = (round_channels(ch, width) for ch in SPRINGENBERG_CHANNELS)
    drop = [nn.Dropout(dropout)] if dropout else []

    def down(channels: int) -> list[nn.Module]:
        return _conv_bn_relu(channels, channels, 3, 2, batch_norm) if all_conv else [nn.MaxPool2d(3, 2, padding=1)]

    layers = [*_conv_bn_relu(in_channels, a, 3, 1, batch_norm), *_conv_bn_relu(a, a, 3, 1, batch_norm)]
    layers += ([] if all_conv else _conv_bn_relu(a, a, 3, 1, batch_norm)) + down(a) + drop
    layers += _conv_bn_relu(a, b, 3, 1, batch_norm) + _conv_bn_relu(b, b, 3, 1, batch_norm)
    layers += ([] if all_conv else _conv_bn_relu(b, b, 3, 1, batch_norm)) + down(b) + drop
    layers += _conv_bn_relu(b, b, 3, 1, batch_norm) + _conv_bn_relu(b, b, 1, 1, batch_norm)
    layers += [nn.Conv2d(b, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return init_weights(nn.Sequential(*layers))


@MODELS.register("convpool_cnn", family="zheng")
def convpool_cnn(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
                 dropout: float = 0.0, batch_norm: bool = True) -> nn.Module:
    """ConvPool-CNN-C (Springenberg et al. 2014): 3x3 convs and two 3x3/2 max-pools, 1x1 head, GAP."""
    return _springenberg(False, num_classes, in_channels, width, dropout, batch_norm)


@MODELS.register("all_cnn", family="zheng")
def all_cnn(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
            dropout: float = 0.0, batch_norm: bool = True) -> nn.Module:
    """All-CNN-C (Springenberg et al. 2014): the max-pools replaced by 3x3 stride-2 convs."""
    return _springenberg(True, num_classes, in_channels, width, dropout, batch_norm)


def fit_stack_weights(member_probs: torch.Tensor, labels: torch.Tensor, iterations: int = 100) -> torch.Tensor:
    """W = softmax(a) minimizing -mean log Σ_i W_i p_i(y) over the given samples.

    ``member_probs``: (members, samples, classes) probabilities; returns (members,) weights.
    """
    p_true = member_probs[:, torch.arange(labels.numel()), labels].double().clamp_min(1e-12)  # (M, N)
    logits = torch.zeros(p_true.shape[0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([logits], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = -torch.logsumexp(torch.log_softmax(logits, 0)[:, None] + p_true.log(), dim=0).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return torch.softmax(logits.detach(), 0).float()


class StackedCNN(OwnLoss, FitsOnValidation, nn.Module):
    """Figure 1: members' softmax outputs averaged with weights W fitted on the validation split."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("stack_weights", torch.full((len(members),), 1.0 / len(members)))

    def combine(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """log Σ_i W_i softmax(z_i): log-probabilities of the weighted mean."""
        log_probs = torch.stack([F.log_softmax(z.float(), dim=1) for z in logits])
        log_w = self.stack_weights.clamp_min(1e-12).log().view(-1, 1, 1)
        return torch.logsumexp(log_probs + log_w, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine([member(x) for member in self.members])

    def forward_train(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stack output, Σ members' cross-entropies): each member trains as it would alone."""
        logits = [member(x) for member in self.members]
        return self.combine([z.detach() for z in logits]), sum(F.cross_entropy(z, y) for z in logits)

    @torch.no_grad()
    def fit_on_validation(self, loader) -> dict:
        """Fit W on ``loader`` (the validation split); returns the weights as metrics."""
        if loader is not None and loader.num_samples > 0:
            was_training = self.training
            self.eval()
            probs, labels = [], []
            for x, y in loader.epoch(0):
                probs.append(torch.stack([F.softmax(m(x).float(), dim=1) for m in self.members]).cpu())
                labels.append(y.cpu())
            self.train(was_training)
            with torch.enable_grad():
                weights = fit_stack_weights(torch.cat(probs, dim=1), torch.cat(labels))
            self.stack_weights.copy_(weights.to(self.stack_weights.device))
        return {f"stack_w{i + 1}": float(w) for i, w in enumerate(self.stack_weights)}


_CHECKED: set = set()  # option sets already built on the meta device


def _check_sc_cnn(base: str = "alexnet_fmnist", base_options: dict | None = None,
                  member_options: dict | None = None, width: float = 1.0, member_width: float = 1.0, **_) -> None:
    """ConfigError before Ray starts: the base must be a model with a width, every member option valid."""
    if base not in MODELS or base == "sc_cnn":
        raise ConfigError("model.base", base, "a registered model other than sc_cnn (alexnet_fmnist, vgg16, resnet32, ...)")
    for key, value in (("base_options", base_options), ("member_options", member_options)):
        for reserved in ("num_classes", "in_channels", "image_size", "conv", "conv_options", "width"):
            if reserved in (value or {}):
                raise ConfigError(f"model.{key}.{reserved}", value[reserved],
                                  "unset: the dataset and the stack's own width and conv options decide it")
    _width(width)
    if not member_width > 0:
        raise ConfigError("model.member_width", member_width,
                          "a number > 0 (the ConvPool and All-CNN members' width relative to the stack's)")
    if "width" not in inspect.signature(MODELS.get(base)).parameters:
        raise ConfigError("model.base", base, "a model with a width option (the stack passes its width to every member)")
    key = json.dumps([base, base_options, member_options, width, member_width], sort_keys=True, default=str)
    if key in _CHECKED:  # a sweep checks the same stack for every cell
        return
    from . import build

    with torch.device("meta"):  # builds on the meta device: every value checked, no memory, no RNG drawn
        build(base, **{**(base_options or {}), "width": width})
        for member in STACK_MEMBERS:
            build(member, **{**(member_options or {}), "width": width * member_width})
    _CHECKED.add(key)


@MODELS.register("sc_cnn", family="zheng", check=_check_sc_cnn)
def sc_cnn(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, base: str = "alexnet_fmnist",
           base_options: dict | None = None, member_options: dict | None = None, width: float = 1.0,
           member_width: float = 1.0) -> StackedCNN:
    """Weighted-average stack of base + ConvPool-CNN-C + All-CNN-C (Zheng et al. Figure 1); the members at
    width x member_width."""
    _check_sc_cnn(base, base_options, member_options, width, member_width)
    from . import build

    dataset = dict(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    members = [build(base, **dataset, width=width, **(base_options or {}))]
    members += [build(name, **dataset, width=width * member_width, **(member_options or {})) for name in STACK_MEMBERS]
    return StackedCNN(members)

