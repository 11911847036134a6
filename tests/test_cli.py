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


@pytest.mark.parametrize("reader", ["head -n 0", "head -n 1"])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path, reader):
    """`harness list | head -n 1`: no BrokenPipeError traceback. ``head -n 0`` leaves before the first write
    (the failure every time: a traceback before main caught it); ``head -n 1`` leaves after the first line,
    while the output (17 kB) may still fit the pipe, as a user mostly sees it."""
    import subprocess
    import sys
    from pathlib import Path

    harness = Path(sys.executable).parent / "harness"
    command = f"set -o pipefail; {harness} list --json --tracking-uri sqlite:///{tmp_path / 'none.db'} | {reader}"
    out = subprocess.run(command, shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert out.stdout == ("" if reader == "head -n 0" else "[\n")
    if reader == "head -n 0":
        assert out.returncode == 1  # the command could not write its output (the signal docs' recipe)


def test_report_on_a_sweep_whose_runs_all_failed_lists_them_and_exits_1(tmp_path, capsys):
    from harness import tracking
    from harness.config import RunConfig

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reports = str(tmp_path / "reports")
    argv = ["report", "jiang-table-4-9", "--tracking-uri", uri, "--out", reports]
    experiment = tracking.ensure_experiment(uri, "jiang_table_4_9")  # what the sweep's launch creates
    rc, out, _ = _run(capsys, *argv)
    assert rc == 0 and "no recorded runs" in out  # a store without a run of the sweep: nothing to say why
    config = RunConfig.from_dict({"data": {"dataset": "digits"}, "model": {"name": "digits_cnn"}}).to_dict()
    trial = tracking.TrialRun(uri, experiment, "baseline-seed0", config,
                              {"artifact": "jiang-table-4-9", "paper": "jiang", "profile": "smoke", "row": "baseline",
                               "seed": 0, "trial_id": "t0", "config_digest": "d0"})
    trial.finish("FAILED", "RuntimeError: CUDA out of memory\n(the rest of the message)")
    client = tracking.client(uri)
    for i in range(1, 23):  # more runs than a report lists
        run = client.create_run(experiment, run_name=f"row{i:02d}-seed0",
                                tags={"profile": "smoke", "row": f"row{i:02d}", "trial_id": f"t{i}"}).info.run_id
        client.set_tag(run, "failure_reason", f"ValueError: reason {i}")
        client.set_terminated(run, "FAILED")
    rc, out, _ = _run(capsys, *argv)
    lines = out.splitlines()
    assert rc == 1 and "no recorded runs" not in out
    assert lines[0] == "nothing rendered from sweep jiang_table_4_9: 23 runs, none FINISHED:"
    assert lines[1] == "  baseline-seed0 FAILED: RuntimeError: CUDA out of memory"  # the reason's first line
    assert lines[2] == "  row01-seed0 FAILED: ValueError: reason 1"
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  … and 3 more"


def test_resume_names_every_launch_option_that_differs_an_unset_one_included():
    """--resume continues a launch only with its own options; an option given now and not at launch
    (settings_of leaves unset ones out of the record) differs too."""
    from harness.errors import ConfigError
    from harness.launch import check_same

    launched = {"sets": [], "dataset": None, "sweep_digest": "d"}
    check_same(launched, dict(launched))
    for key, flag, value in (("search_seed", "--search-seed", 3), ("algorithm", "--algorithm", "tpe"),
                             ("num_samples", "--num-samples", 8)):
        with pytest.raises(ConfigError) as e:
            check_same(launched, {**launched, key: value})
        assert e.value.key == "--resume" and f"{flag} was (none), now {value}" in e.value.value
        with pytest.raises(ConfigError) as e:
            check_same({**launched, key: value}, launched)
        assert f"{flag} was {value}, now (none)" in e.value.value
    check_same({"sweep_digest": "d"}, {**launched, "algorithm": "tpe"})  # a record from before these options
