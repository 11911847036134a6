"""Çallı's studies without a table (Secs. 3.2.1, 3.3.1, 3.3.2): the separable ResNet-34 counted by hand,
the pruning cycles of the small CIFAR-10 model, the generated ImageNet stand-in, the published
numbers against the seed text, and the three sweeps' smoke reports (conftest's smoke_all)."""
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from harness_analysis import calli_studies
from harness_analysis import published
from harness import catalog, measure, models
from harness.errors import ConfigError
from harness.models import calli_rules
from harness.runs import load_runs
from harness.train import build_runner, train
from harness.config import RunConfig

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
STUDIES = ("calli_section_3_2_1", "calli_section_3_3_1", "calli_section_3_3_2")


# ---- the separable ResNet-34 (Sec. 2.4.1, Figure 2.13) --------------------------------------------------------

def stem_params(s: int, first: int, in_channels: int = 3) -> int:
    """3x3/2 conv, BN, 3x3 conv, BN, depthwise 3x3 x2, BN, pointwise: no biases, BN = 2 per channel."""
    return 9 * in_channels * s + 2 * s + 9 * s * s + 2 * s + 9 * 2 * s + 2 * 2 * s + 2 * s * first


def block_params(c: int, o: int) -> int:
    """bn1, depthwise (9 c), BN, pointwise (c o), bn2, depthwise (9 o), BN, pointwise (o o), 1x1 projection."""
    projection = c * o if c != o else 0
    return 2 * c + 9 * c + 2 * c + c * o + 2 * o + 9 * o + 2 * o + o * o + projection


def resnet34_params(widths, blocks, s, classes) -> int:
    total, previous = stem_params(s, widths[0]), widths[0]
    for width, count in zip(widths, blocks):
        for b in range(count):
            total += block_params(previous if b == 0 else width, width)
            previous = width
    return total + 2 * widths[-1] + widths[-1] * classes + classes


def test_calli_resnet34_counts_by_hand():
    model = models.build("calli_resnet34", num_classes=1000, in_channels=3, image_size=224)
    c = measure.profile(model, (3, 224, 224))
    assert c["params"] == resnet34_params((64, 128, 256, 512), (3, 4, 6, 3), 16, 1000) == 3_126_520
    # input layers at 224: 3x3/2 conv at 112^2 (27 x 16), 3x3 conv (9 x 16 x 16), depthwise x2 (9 x 32),
    # 2x2 max pooling, pointwise at 56^2 (32 x 64); ResNet-34's 7x7/2 conv at 112^2 (147 x 64)
    stem = 112 * 112 * (27 * 16 + 9 * 16 * 16 + 9 * 32) + 56 * 56 * 32 * 64
    assert measure.profile(model.stem, (3, 224, 224))["macs"] == stem == 44_355_584
    assert 112 * 112 * 7 * 7 * 3 * 64 == 118_013_952  # ResNet-34's first convolution
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == 4 + 16 * 4 + 3 + 1
    assert [len(stage) for stage in model.stages] == [3, 4, 6, 3]
    small = models.build("calli_resnet34", num_classes=4, in_channels=3, image_size=32, widths=[8, 16, 32, 64],
                         blocks=[1, 1, 1, 1], stem_width=4)
    assert measure.count_params(small) == resnet34_params((8, 16, 32, 64), (1, 1, 1, 1), 4, 4)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 4) and small(torch.randn(2, 3, 9, 9)).shape == (2, 4)
    for bad, key in (({"widths": [8, 16]}, "model.widths"), ({"blocks": [1, 0, 1, 1]}, "model.blocks"),
                     ({"stem_width": 0}, "model.stem_width")):
        with pytest.raises(ConfigError, match=key):
            models.check_options("calli_resnet34", bad)


def test_imagenet_counts_table_sets_ours_beside_resnet34():
    counts = calli_studies.imagenet_counts()
    assert counts["resnet34"]["params"] == 21_797_672  # torchvision's resnet34
    assert counts["resnet34"]["stem_macs"] == 118_013_952 and counts["calli_resnet34"]["stem_macs"] == 44_355_584
    assert counts["calli_resnet34"]["layers"] == 72 and counts["resnet34"]["layers"] == 37  # 36 convs (3 projections) + fc


# ---- pruning the small CIFAR-10 model in cycles (Secs. 2.4.2, 3.3.2) ---------------------------------------------

def test_a_one_channel_depthwise_conv_is_pruned_as_depthwise_again():
    """A depthwise conv pruned to one channel has groups 1; pruning it again must still follow its input."""
    torch.manual_seed(0)
    model = models.build("calli_cifar", num_classes=10, in_channels=1, image_size=8, widths=[4, 8, 16]).eval()
    one = [torch.tensor([0])]
    stream = [torch.arange(4), torch.arange(8), torch.arange(16)]
    blocks = sum(len(stage) for stage in model.stages)
    pruned = calli_rules.prune_separable_residual(model, stream, one * blocks).eval()
    assert pruned.stages[0][0].sep2[0].groups == 1 == pruned.stages[0][0].sep2[0].in_channels
    x = torch.randn(4, 1, 8, 8)
    again = calli_rules.prune_separable_residual(pruned, stream, one * blocks).eval()  # keeps every node
    torch.testing.assert_close(again(x), pruned(x))


def cycles_config(**options) -> dict:
    return {"data": {"dataset": "digits", "train_subset": 256, "test_subset": 128, "val_size": 64},
            "model": {"name": "calli_cifar", "options": {"widths": [8, 16, 32]}},
            "method": {"name": "node_pruning_residual", "options": {"epochs_per_cycle": 1, "stats_samples": 64,
                                                                    **options}},
            "train": {"epochs": 3, "batch_size": 64, "lr": 0.05, "threads": 1}}


def test_pruning_cycles_remove_nodes_and_log_the_counts_of_the_pruned_model():
    history = []
    result = train(cycles_config(), on_epoch=lambda cycle, metrics: history.append(dict(metrics)))
    built = models.build("calli_cifar", num_classes=10, in_channels=1, image_size=8, widths=[8, 16, 32])
    initial_nodes = (8 + 16 + 32) + sum(block.sep1[-1].out_channels for stage in built.stages for block in stage)
    assert history[0]["initial_params"] == measure.count_params(built)
    assert history[0]["cycles"] == 1 and history[0]["first_test_acc"] == history[0]["test_acc"]
    for metrics in history:
        assert metrics["nodes_frac"] == pytest.approx(metrics["nodes"] / initial_nodes)
        assert 0.0 <= metrics["test_acc_pruned"] <= 100.0
    pruned = [m["pruned"] for m in history]
    assert pruned[0] > 0  # the outlier band drops nodes on a barely trained model
    nodes = [m["nodes"] for m in history]
    assert all(a >= b for a, b in zip(nodes, nodes[1:]))
    assert result["params"] == history[-1]["params"] < history[0]["initial_params"]
    assert result["flops"] == 2 * result["macs"]
    assert result["converged"] == float(history[-1]["pruned"] == 0)


def test_pruning_cycles_misuse_is_a_config_error():
    with pytest.raises(ConfigError, match="method.options.criterion"):
        build_runner(RunConfig.from_dict(cycles_config(criterion="gradient")))
    with pytest.raises(ConfigError, match="method.options.cycle_milestones"):
        build_runner(RunConfig.from_dict(cycles_config(cycle_milestones=[2])))  # a cycle is 1 epoch
    other = cycles_config()
    other["model"] = {"name": "calli_baseline", "options": {"widths": [8, 16, 32]}}
    with pytest.raises(ConfigError, match="model.name"):
        build_runner(RunConfig.from_dict(other))


# ---- the generated ImageNet stand-in --------------------------------------------------------------------------

def test_imagenet_generated_is_written_where_it_is_looked_for(tmp_path):
    from harness import data

    folder = data.locate("imagenet_generated", str(tmp_path))
    assert folder == tmp_path / "imagenet_generated" and (folder / "layout.json").is_file()
    assert len(list((folder / "train").rglob("*.JPEG"))) == 4 * 12 and len(list((folder / "val").rglob("*.JPEG"))) == 16
    train_split, val_split, test_split, info = data.load_folders("imagenet_generated", str(tmp_path), val_size=8)
    assert (len(train_split), len(val_split), len(test_split), info.num_classes) == (40, 8, 16, 4)
    assert data.locate("imagenet_generated", str(tmp_path)) == folder  # the second look writes nothing


# ---- published numbers ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed texts (../shared/seeds) are not beside this checkout")
def test_every_published_number_is_printed_in_the_seed_text():
    """As tests/test_report.py checks the five papers' files, for analysis/published/calli_studies.yaml."""
    data = published.load("calli_studies")
    text = (SEEDS / data["seed"]).read_text()
    printed = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)}
    values = [v for block in data.values() if isinstance(block, dict) for row in block["rows"] for v in row.values()
              if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert sorted(values) == [0.3, 25.3, 63, 99] and all(v in printed for v in values)
    assert published.table("calli_studies", "3.3.2")["rows"][0]["result"] in " ".join(text.split())


# ---- the sweeps at smoke --------------------------------------------------------------------------------------

def test_the_studies_are_calli_artifacts_with_three_profiles():
    sweeps = catalog.all_sweeps()
    for name in STUDIES:
        assert sweeps[name].paper == "calli" and set(sweeps[name].profiles) == {"paper", "quick", "smoke"}
    assert {c.config["data"]["dataset"] for c in sweeps["calli_section_3_2_1"].cells("paper")} == {"mnist"}
    assert {c.config["data"]["dataset"] for c in sweeps["calli_section_3_2_1"].cells("quick")} == {"fashion_mnist"}
    paper = sweeps["calli_section_3_3_1"].cells("paper")
    assert len(paper) == 1 and paper[0].config["data"]["dataset"] == "imagenet"
    assert paper[0].config["data"]["loader"] == "stream"
    assert sweeps["calli_section_3_3_1"].cells("smoke")[0].config["data"]["dataset"] == "imagenet_generated"


def _report(smoke_all, artifact: str) -> tuple[pd.DataFrame, str]:
    return (pd.read_csv(smoke_all.reports / f"{artifact}.csv", dtype=str),
            (smoke_all.reports / f"{artifact}.md").read_text())


@pytest.mark.slow
def test_section_3_2_1_smoke_report(smoke_all):
    assert smoke_all.rc["calli_section_3_2_1"] == (0, 0)
    frame, text = _report(smoke_all, "calli-section-3-2-1")
    frame = frame.set_index("row (ours)")
    assert list(frame.index) == ["convolution", "kernel_composing", "separable", "separable_nonlinear"]
    assert set(frame["top-1 % (paper, MNIST)"]) == {"99 ± 0.3"}
    assert all(v.endswith("(n=1)") for v in frame["top-1 % mean ± std (ours, digits)"])
    # the baseline at 8x8x1 with widths 8/16/32: 5x5 convs with bias, BN (2 a channel), the dense layer
    params = (25 * 8 + 8 + 16) + (25 * 8 * 16 + 16 + 32) + (25 * 16 * 32 + 32 + 64) + 32 * 10 + 10
    assert frame.loc["convolution", "params (ours)"] == str(params) == "16698"
    assert "these runs ran digits" in text and "Spread between operations" in text


@pytest.mark.slow
def test_section_3_3_1_smoke_report_streams_the_generated_layout(smoke_all):
    assert smoke_all.rc["calli_section_3_3_1"] == (0, 0)
    runs = load_runs("calli_section_3_3_1", smoke_all.store)
    assert list(runs["loader"]) == ["stream"] and list(runs["dataset"]) == ["imagenet_generated"]
    frame, text = _report(smoke_all, "calli-section-3-3-1")
    frame = frame.set_index("Model")
    ours, resnet = frame.loc["Our Model (separable ResNet-34)"], frame.loc["ResNet-34 [HZRS15]"]
    assert (ours["params M (ours, built)"], resnet["params M (ours, built)"]) == ("3.13", "21.80")
    assert (ours["input layers macs M"], resnet["input layers macs M"]) == ("44.4", "118.0")
    assert ours["top-1 % (paper)"] == "63" and resnet["top-1 % (paper)"] == "74.7 (25.3 % error)"
    assert 0.0 <= float(ours["top-1 % (ours, imagenet_generated)"]) <= 100.0
    assert "2.7 times fewer MACs" in text and "stream loader (imagenet_generated)" in text


@pytest.mark.slow
def test_section_3_3_2_smoke_report(smoke_all):
    assert smoke_all.rc["calli_section_3_3_2"] == (0, 0)
    frame, text = _report(smoke_all, "calli-section-3-3-2")
    frame = frame.set_index("row")
    assert list(frame.index) == ["count", "variance"]
    assert set(frame["paper"]) == {calli_studies.PRUNING_RESULT}
    for row in frame.index:
        before, after = (int(v) for v in frame.loc[row, "params before -> after"].split(" -> "))
        assert after <= before
        assert frame.loc[row, "nodes kept (fraction)"].endswith("(n=1)")
        assert frame.loc[row, "test % unpruned (ours, digits)"] != "-"
    assert "only its outcome" in text
