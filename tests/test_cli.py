"""The harness command: profile, models, sampling and list output, and bad input exiting 2 early."""
import json

import pytest

from harness import cli


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_profile_json_keys_and_hand_count(capsys):
    rc, out, _ = _run(capsys, "profile", "resnet20", "--input", "3x32x32", "--json")
    d = json.loads(out)
    assert rc == 0 and d["params"] == 269722 and d["macs"] == 40551040 and d["flops"] == 81102080


def test_profile_set_and_by_layer(capsys):
    rc, out, _ = _run(capsys, "profile", "mobilenetv2", "--set", "width=0.5", "--input", "3x32x32", "--json",
                      "--by-layer")
    d = json.loads(out)
    assert rc == 0 and sum(layer["macs"] for layer in d["layers"]) == d["macs"]


def test_sampling_json_matches_theorems(capsys):
    rc, out, _ = _run(capsys, "sampling", "--epochs", "120", "--alpha", "0.8", "--batch", "128", "--samples", "50000",
                      "--json")
    d = json.loads(out)
    assert rc == 0 and d["ratios"] == [0.8] * 120
    assert d["miss_probability"] == pytest.approx(1.3292e-84, rel=1e-4)
    assert d["time_ratio"] == pytest.approx(0.8)
    assert d["theorem4"]["M"] == 391 and "round" in d["rounding"]


def test_models_lists_the_registry(capsys):
    rc, out, _ = _run(capsys, "models", "--json")
    names = {m["name"] for m in json.loads(out)}
    assert {"resnet20", "resnet32", "resnet56", "mobilenetv2", "digits_cnn"} <= names


@pytest.mark.parametrize("argv,words", [
    (["profile", "resnet21"], ["model", "resnet21", "resnet20"]),
    (["profile", "resnet20", "--set", "depth=3"], ["model.depth", "width"]),
    (["profile", "resnet20", "--input", "3x32"], ["input", "CxHxW"]),
    (["sampling", "--epochs", "10", "--alpha", "0.8,x,0.8", "--gamma", "1/3,1/3,1/3"], ["--alpha", "0.8,x,0.8"]),
    (["sampling", "--epochs", "10", "--alpha", "1.2"], ["--alpha", "1.2", "(0, 1]"]),
    (["sampling", "--epochs", "10", "--alpha", "0.8,0.8,0.8", "--gamma", "0.5,0.5,0.5"], ["--gamma", "sum to 1"]),
    (["sampling", "--epochs", "0", "--alpha", "0.8"], ["epochs", "> 0"]),
    (["run", "jiang-table-9-99"], ["artifact", "jiang-table-4-9"]),
    (["run", "jiang-table-4-9", "--profile", "smoke", "--set", "train.batch_size=0"], ["train.batch_size", "> 0"]),
    (["run", "jiang-table-4-9", "--profile", "smoke", "--set", "train.epochs=ten"], ["train.epochs", "ten"]),
    (["run", "jiang-table-4-9", "--profile", "smoke", "--dataset", "svhn"], ["data.dataset", "svhn", "cifar10"]),
])
def test_bad_input_exits_2_naming_key_and_valid(capsys, argv, words):
    rc, _, err = _run(capsys, *argv)
    assert rc == 2
    for w in words:
        assert w in err, (w, err)
