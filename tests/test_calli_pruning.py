"""Çallı's node pruning: physical removal keeps the function on the kept nodes, the criteria, the cycles."""
import pytest
import torch
from torch import nn

from harness import measure
from harness.checks import checked
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.layers import surgery
from harness.methods import node_pruning as npr
from harness.models import calli_rules
from harness.train import Trainer, build_runner


def hand_built_mlp() -> surgery.Chain:
    """2 -> 4 -> 3 -> 1 with ReLUs; hidden nodes 1 and 3 of layer 1 and node 0 of layer 2 never fire on x >= 0."""
    chain = surgery.Chain([nn.Sequential(nn.Linear(2, 4), nn.ReLU()), nn.Sequential(nn.Linear(4, 3), nn.ReLU()),
                       nn.Sequential(nn.Linear(3, 1))])
    torch.manual_seed(0)
    with torch.no_grad():
        first, second = chain.stages[0][0], chain.stages[1][0]
        first.weight.copy_(torch.tensor([[1.0, 0.5], [-1.0, -1.0], [0.3, 2.0], [-0.2, -0.1]]))
        first.bias.copy_(torch.tensor([0.1, -0.5, 0.0, -1.0]))
        second.weight.abs_()
        second.weight[0] = -second.weight[0]  # node 0 of layer 2: negative weights on non-negative inputs
        second.bias.copy_(torch.tensor([-1.0, 0.2, 0.1]))
    return chain


def test_pruning_dead_nodes_keeps_the_function_and_drops_params_by_hand():
    chain = hand_built_mlp()
    x = torch.rand(256, 2)  # non-negative inputs
    counts = npr.node_statistics(chain, x, "count")
    assert counts[0][1] == 0 and counts[0][3] == 0 and counts[1][0] == 0
    assert (counts[0][[0, 2]] > 0).all() and (counts[1][[1, 2]] > 0).all()
    keep = {i: npr.select(c, "zero") for i, c in enumerate(counts)}
    assert keep[0].tolist() == [0, 2] and keep[1].tolist() == [1, 2]
    pruned = surgery.prune_nodes(chain, keep)
    assert pruned.widths() == [2, 2]
    torch.testing.assert_close(pruned(x), chain(x))
    # before: (2*4+4) + (4*3+3) + (3+1) = 31; after: (2*2+2) + (2*2+2) + (2+1) = 15
    assert measure.count_params(chain) == 31 and measure.count_params(pruned) == 15
    variances = npr.node_statistics(chain, x, "variance")  # the zero-variance bound finds the same nodes
    assert [npr.select(v, "zero").tolist() for v in variances] == [[0, 2], [1, 2]]


def test_pruning_conv_and_deconv_channels_keeps_the_output():
    torch.manual_seed(0)
    chain = npr.autoencoder_chain([6, 5, 4])
    for stage in chain.stages:  # non-trivial running statistics for eval mode
        stage[1].running_mean.uniform_(-0.1, 0.1)
        stage[1].running_var.uniform_(0.5, 1.5)
    with torch.no_grad():  # silence channels 1, 4 of stage 0, 2 of stage 1, 0 of stage 2: BN -> 0 -> ReLU -> 0
        for stage, channels in ((0, [1, 4]), (1, [2]), (2, [0])):
            bn = chain.stages[stage][1]
            bn.bias.fill_(3.0)  # the others stay active: positive, varying outputs
            bn.weight[channels] = 0.0
            bn.bias[channels] = -1.0
    chain.eval()
    x = torch.rand(3, 1, 12, 12) * 2 - 1
    stats = npr.node_statistics(chain, x, "variance")
    keep = {i: npr.select(v, "zero") for i, v in enumerate(stats)}
    assert [k.tolist() for k in keep.values()] == [[0, 2, 3, 5], [0, 1, 3, 4], [1, 2, 3]]
    pruned = surgery.prune_nodes(chain, keep).eval()
    torch.testing.assert_close(pruned(x), chain(x))
    before, after = measure.profile(chain, (1, 12, 12)), measure.profile(pruned, (1, 12, 12))
    # conv 3x3 s2 1->c1 at 6x6, conv 3x3 s2 c1->c2 at 3x3, deconv c2->c3 at 6x6 input-driven, deconv c3->1
    def macs(c1, c2, c3):
        return 36 * 9 * c1 + 9 * 9 * c1 * c2 + 9 * 9 * c2 * c3 + 36 * 9 * c3

    assert before["macs"] == macs(6, 5, 4) and after["macs"] == macs(4, 4, 3)


def test_outlier_bound_keeps_inside_mean_plus_minus_two_var():
    v = torch.tensor([1.0, 1.1, 0.9, 1.0, 3.0])  # mean 1.4, var 0.644: keep (0.112, 2.688)
    assert npr.select(v, "outlier").tolist() == [0, 1, 2, 3]
    assert npr.select(v, "outlier", keep="outside").tolist() == [4]
    assert npr.select(torch.zeros(3), "zero").tolist() == [0]  # never empty: the largest statistic stays


def test_summation_experiment_runs_cycles_until_nothing_is_pruned():
    cfg = RunConfig.from_dict({
        "data": {"dataset": "digits"},
        "method": {"name": "node_pruning_summation",
                   "options": {"hidden": 50, "samples": 2000, "test_samples": 500, "criterion": "count",
                               "bound": "zero", "stats_samples": 500}},
        "train": {"epochs": 6, "batch_size": 100, "lr": 0.01, "momentum": 0.9, "threads": 1, "device": "cpu"}})
    runner = build_runner(cfg)
    assert runner.counts() == {"params": 2 * 50 + 50 + 50 + 1, "macs": 2 * 50 + 50, "flops": 300}
    seen = []
    result = runner.run(lambda step, metrics: seen.append((step, metrics)))
    assert result.final == runner.counts()
    results = result.merged()
    assert [s for s, _ in seen] == list(range(1, len(seen) + 1))
    widths = [m["nodes_1"] for _, m in seen]
    assert all(a >= b for a, b in zip([50] + widths, widths))  # nodes only go
    assert results["nodes_1"] == widths[-1] and results["params"] == 4 * widths[-1] + 1
    assert results["cycles"] == len(seen)
    assert results["converged"] == 1.0 or len(seen) == 6  # stopped because a cycle pruned nothing, or at the cap
    assert seen[-1][1]["pruned"] == 0 or len(seen) == 6
    state = runner.state_dict()  # a checkpoint restores the pruned widths
    again = build_runner(cfg)
    again.load_state_dict(state)
    assert again.chain.widths() == runner.chain.widths() and again.cycle == runner.cycle


def test_autoencoder_experiment_on_digits():
    cfg = RunConfig.from_dict({
        "data": {"dataset": "digits", "train_subset": 128, "test_subset": 32, "val_size": 32},
        "method": {"name": "node_pruning_autoencoder",
                   "options": {"widths": [8, 16, 8], "bound": "outlier", "regularization": "l2", "reg_lambda": 0.01,
                               "stats_samples": 128}},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "threads": 1, "device": "cpu"}})
    results = build_runner(cfg).run().merged()
    assert 1 <= results["nodes_1"] <= 8 and 1 <= results["nodes_2"] <= 16 and 1 <= results["nodes_3"] <= 8
    assert results["test_rmse"] > 0 and results["cycles"] in (1, 2)


def test_experiment_options_and_misuse_are_config_errors():
    with pytest.raises(ConfigError, match="method.options.criterion"):
        checked({"method": {"name": "node_pruning_summation", "options": {"criterion": "gradient"}}})
    with pytest.raises(ConfigError, match="method.options.widths"):
        checked({"method": {"name": "node_pruning_autoencoder", "options": {"widths": [4, 0, 4]}}})
    cfg = RunConfig.from_dict({"data": {"dataset": "digits"}, "method": {"name": "node_pruning_summation"},
                               "model": {"name": "digits_cnn"}, "train": {"threads": 1, "device": "cpu"}})
    with pytest.raises(ConfigError, match="method.name"):
        Trainer(cfg)  # an experiment is not a classification training method


def test_separable_residual_rules_keep_the_function_on_the_kept_nodes():
    """Sec. 2.4.2 on calli_cifar: a stream channel dead in the first group and an inner channel dead in block 0."""
    from harness import models

    torch.manual_seed(0)
    model = models.build("calli_cifar", num_classes=10, in_channels=1, image_size=8, widths=[4, 8, 16], blocks=2)
    blocks = [block for stage in model.stages for block in stage]
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
        model.conv1.weight[1] = 0  # stream channel 1 of group 0: zero at the stem ...
        for block in blocks[:2]:
            block.sep2[-1].weight[1] = 0  # ... and in both residuals of stage 0
        for block in blocks[:3]:  # the BNs reading it pass nothing on
            for bn in (block.bn1, block.sep1[1]):
                bn.weight[1], bn.bias[1] = 0.0, 0.0
        blocks[0].sep1[-1].weight[2] = 0  # inner channel 2 of block 0
        for bn in (blocks[0].bn2, blocks[0].sep2[1]):
            bn.weight[2], bn.bias[2] = 0.0, 0.0
    model.eval()
    x = torch.randn(16, 1, 8, 8)
    stream, inner = calli_rules.separable_residual_keep(model, x, "variance", "zero")
    assert [s.tolist() for s in stream] == [[0, 2, 3], list(range(8)), list(range(16))]
    assert inner[0].tolist() == [0, 1, 3] and [len(i) for i in inner[1:]] == [4, 8, 8, 16, 16]
    pruned = calli_rules.prune_separable_residual(model, stream, inner).eval()
    torch.testing.assert_close(pruned(x), model(x), atol=1e-5, rtol=1e-5)
    depthwise = pruned.stages[0][0].sep1[0]
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == 3  # follows its input
    assert pruned.stages[1][0].shortcut_index.tolist() == [0, 3, 1, 2, 3, 3, 3, 3]  # group 0 -> group 1, zeros
    # parameters removed: stem 9 (one 3x3 filter); per stage-0 block 1 of 4 stream channels in bn1 (2), dw (9),
    # its BN (2) and the first pointwise's input (4 x 1); the second pointwise's output (1 x 4); block 0's inner channel:
    # first pointwise output (4), bn2 (2), dw (9), BN (2), second pointwise input (4); block 2 reads group 0: bn1, dw,
    # BN and 8 pointwise weights of the dropped channel. In block 0 both pointwise convs lose a row and a column
    # that cross in one weight each: -2.
    removed = 9 + 2 * (2 + 9 + 2 + 4 + 4) + (4 + 2 + 9 + 2 + 4) + (2 + 9 + 2 + 8) - 2
    assert measure.count_params(model) - measure.count_params(pruned) == removed


def test_distortion_leaves_a_one_weight_layer_finite_and_moves_the_others():
    """Pruned down to one node, summation's output layer holds one weight: its sample std is NaN, which
    used to make the next cycle diverge. It stays as it was; layers with a spread get their noise."""
    import types

    from harness.methods.node_pruning import PruningCycles, summation_chain

    torch.manual_seed(0)
    chain = summation_chain([1])  # Linear(2, 1), then Linear(1, 1): one weight
    before = [stage[0].weight.detach().clone() for stage in chain.stages]
    with torch.no_grad():
        PruningCycles.distort(types.SimpleNamespace(chain=chain, options={"distortion": 0.5}))
    after = [stage[0].weight.detach() for stage in chain.stages]
    assert all(torch.isfinite(w).all() for w in after)
    assert not torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
