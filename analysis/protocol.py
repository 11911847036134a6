"""The protocol readings a report states beside its table or figure (issue 27).

Each sweep's comment and docs/fidelity.md declare the readings of the paper's protocol; a reader of a
report sees them here too. ``NOTES`` holds, per sweep, the notes every artifact of that sweep prints
(``harness_analysis.report.render`` appends them). ``PAPER_RUNS`` gives, per sweep, the runs behind each
number the paper prints where the text says it ran more than one (every other sweep: one run), and
``seed_note`` turns a sweep's recorded seeds into "mean of n seeds; the paper: one run" where they differ.
"""
from __future__ import annotations

import pandas as pd

_FIDELITY = "docs/fidelity.md#{}"

_ZHENG_PRUNING = ("Pruning schedule (ours; the paper says only \"All models are iteratively pruned and retrained\"): "
                  "method prune's defaults, 4 steps at evenly spaced epochs from 20 % to 50 % of the run, each removing "
                  "the same fraction of the live weights, the linear layers pruned with the convs (include_linear); "
                  + _FIDELITY.format("zheng") + ".")
_ZHENG_MEMBERS = ("The stack members' member_width is fitted to the paper's own SC-CNN / C-CNN time ratios (the "
                  "Overall rows), so the stacks' MAC ratios match those ratios partly by construction.")
_ZHENG_K = ("DBS rows use k_scale 0.0272, our unit for eq. 18's k (the one under which Sec. 5.3's k = 1.60 is the "
            "optimum); how much it changes accuracy is measured in " + _FIDELITY.format("zheng") + ".")
_CALLI_DECAY = ("Weight decay 0.002 on every parameter, BN scales and biases included: our reading of \"L2 norm of "
                "weights multiplied by 0.001\" (the gradient of 0.001 x sum w^2). The TF CIFAR-10 tutorial the thesis "
                "follows adds 0.001 x l2_loss(w) = 0.001 x sum w^2 / 2 on the weights only, i.e. weight decay 0.001 "
                "without BN and biases; " + _FIDELITY.format("calli") + ".")
_JIANG_AUGMENT = ("Augmentation: the dissertation names none; ours is the harness's CIFAR default (zero-pad 4 and a "
                  "random 32x32 crop, horizontal flip, data.augment true); " + _FIDELITY.format("jiang") + ".")
_JIANG_GPUS = ("Hardware: the paper trains batch 256 and 64 \"on two Nvidia Quadro RTX 5000 GPUs\"; each trial here "
               "trains the whole batch on one device, so BN's batch statistics are over the whole batch (a "
               "data-parallel split computes them per GPU) and times are one device's.")
_JIN_INPUT = ("Input size: the models train at the dataset's own 28x28 (MNIST) or 32x32 (CIFAR-10) with our "
              "small-input stems (harness/models/alexnet.py, inception.py, ...), while Tables 2.1 and 3.2 count "
              "\"one sample of size 224x224\"; the thesis does not say how it fed its small images to these models.")

NOTES: dict[str, list[str]] = {
    "zheng_table_1": [_ZHENG_PRUNING, _ZHENG_MEMBERS, _ZHENG_K,
                      "Dropout: the C-CNN's 0.2 follows every conv block and none of the hidden linear layers "
                      "(Sec. 4.1: \"is used in convolutional layers\"); runs recorded before issue 27 (no "
                      "model.options.head_dropout in their config) dropped out after the two 4096-unit layers too."],
    "zheng_table_3": [_ZHENG_PRUNING, _ZHENG_MEMBERS, _ZHENG_K],
    "zheng_table_5": [_ZHENG_PRUNING, _ZHENG_MEMBERS, _ZHENG_K],
    "poellot_accuracy": ["Stacking: the meta-classifier (two dense layers) trains at the same time as the members, on "
                         "their detached outputs for each training batch, not as a second stage on held-out "
                         "predictions of the trained members (the slides say neither way); "
                         + _FIDELITY.format("poellot") + "."],
    "calli_approximation": ["One trained model (seed 0) approximated under every row's thresholds: the thesis "
                            "approximates \"our best model (91.1 % top-1 accuracy)\" once, the best of its 10 training "
                            "sessions by test accuracy, which would select on test; runs recorded before issue 27 "
                            "trained seeds 0-2.", _CALLI_DECAY],
    "calli_table_3_2": [_CALLI_DECAY],
    "calli_section_3_3_2": [_CALLI_DECAY],
    "calli_summation": ["A cycle's length (method epochs_per_cycle: 3 passes at the paper profile, 1 at quick) is "
                        "ours: the thesis collects the statistics \"after our model converges\" and gives no count; "
                        + _FIDELITY.format("calli") + "."],
    "calli_figure_3_1": ["Training set: all 60,000 training images (data.val_size 0; the thesis names no split and the "
                         "experiment reads none); runs recorded before issue 27 held 5,000 out, unread."],
    "jiang_table_4_9": [_JIANG_AUGMENT],
    "jiang_table_4_11": [_JIANG_AUGMENT],
    "jiang_table_4_13": ["Seeds: one, as the text says (\"We apply the same random seed number for each run on the same "
                         "dataset\"); runs recorded before issue 27 trained seeds 0-2 at the paper profile."],
    **{f"jiang_table_4_{n}": [_JIANG_AUGMENT, _JIANG_GPUS] for n in range(1, 9)},
    "jiang_crnet_exp_g": [_JIANG_AUGMENT, _JIANG_GPUS],
    "jiang_figure_3_1": [_JIANG_AUGMENT],
    "jin_table_2_2": [_JIN_INPUT],
    "jin_table_2_2_cifar10": [_JIN_INPUT],
    "jin_table_3_1": [_JIN_INPUT],
}

# sweep -> runs behind each number the paper prints, where the text says more than one
PAPER_RUNS: dict[str, int] = {
    "calli_table_3_1": 10,  # "Mean and max of top-1 accuracy results of 10 runs"
    "calli_section_3_2_1": 10,  # "We ran our experiments 10 times to validate our results"
    "calli_table_3_2": 10,  # "a maximum of 91.1% top-1 classification accuracy ... in 10 training sessions"
}


def seed_note(runs: pd.DataFrame, sweep: str) -> str:
    """"Seeds: mean of 3 seeds; the paper: one run." where the runs' rows have several seeds and the paper
    printed one run's number; "" otherwise (one seed a row, or the paper ran as many)."""
    if runs.empty or "seed" not in runs or "row" not in runs:
        return ""
    counts = runs.dropna(subset=["seed"]).groupby("row")["seed"].nunique()
    if counts.empty or counts.max() <= 1 or PAPER_RUNS.get(sweep, 1) > 1:
        return ""
    n = str(counts.max()) if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    return f"Seeds: mean of {n} seeds; the paper: one run."


def notes(sweep: str) -> list[str]:
    return list(NOTES.get(sweep, []))
