"""benchmarks/gpu_check.{sh,py}: the no-CUDA answer (exit 3, one line, a JSON saying so), and the
model x conv enumeration, run here on the CPU in its --dry mode for a few models."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_script_without_cuda_says_so_and_exits_3(tmp_path):
    out = tmp_path / "summary" / "gpu_check.json"
    proc = subprocess.run(["bash", str(SCRIPT), "--out", str(out)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "unused")})
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == ["gpu_check: no CUDA device (nvidia-smi not found); nothing was run"]
    summary = json.loads(out.read_text())
    assert summary["status"] == "no CUDA" and summary["passed"] is False and summary["steps"] == {}
    assert not (tmp_path / "unused").exists()  # --out wins over $OUT


def test_python_without_cuda_exits_3_before_any_step(tmp_path, monkeypatch, capsys):
    gpu_check = _module()
    monkeypatch.setattr(gpu_check, "cuda_available", lambda: False)
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.main([]) == 3  # default --device cuda, default path $OUT/gpu_check.json
    assert capsys.readouterr().out.splitlines() == [
        "gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing was run"]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["status"] == "no CUDA" and summary["steps"] == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_real_cuda_probe_is_false_here():
    assert _module().cuda_available() is False


def test_dry_run_enumerates_models_and_convs_on_cpu(tmp_path, capsys):
    gpu_check = _module()
    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--device", "cpu", "--dry", "--models", "resnet20,digits_cnn,alexnet_fmnist",
                         "--convs", "dense,winograd,maxmin,nope", "--out", str(out), "--budget", "240"])
    summary = json.loads(out.read_text())
    models_step = summary["steps"]["models"]
    assert list(summary["steps"]) == ["models"]  # --dry: no sweep, stream or benchmarks
    assert rc == 0 and summary["passed"] is True and models_step["status"] == "passed", models_step["error"]
    cases = {(c["model"], c["conv"]): c for c in models_step["result"]["cases"]}
    assert len(cases) == 12 and models_step["result"]["counts"] == {"invalid": 3, "passed": 9}
    for model, shape in (("resnet20", [3, 32, 32]), ("digits_cnn", [1, 8, 8]), ("alexnet_fmnist", [1, 28, 28])):
        for conv in ("dense", "winograd", "maxmin"):
            case = cases[model, conv]
            assert case["status"] == "passed" and case["input"] == shape and case["loss"] > 0
        # a combination the harness rejects is recorded with its message, and is not a failure
        assert cases[model, "nope"]["status"] == "invalid" and "model.conv='nope'" in cases[model, "nope"]["error"]
    assert "gpu_check: models: passed" in capsys.readouterr().out
    assert not list(tmp_path.glob("gpu_check.*.json"))  # the step's own file is folded into the summary


def test_an_error_in_a_valid_combination_fails_the_step(monkeypatch):
    import argparse

    from harness import models

    gpu_check = _module()
    real_build = models.build

    def build(name, **options):  # a model whose forward breaks on this device, as a CUDA-only bug would
        model = real_build(name, **options)
        model.forward = lambda x: (_ for _ in ()).throw(RuntimeError("CUDA error: an illegal memory access"))
        return model if options.get("conv") == "winograd" else real_build(name, **options)

    monkeypatch.setattr(models, "build", build)
    args = argparse.Namespace(device="cpu", models="digits_cnn", convs="dense,winograd")
    result, saved = {}, []
    assert gpu_check.step_models(args, result, lambda: saved.append(len(result["cases"]))) is False
    statuses = {c["conv"]: c["status"] for c in result["cases"]}
    assert statuses == {"dense": "passed", "winograd": "failed"} and saved == [1, 2]  # saved after each case
    assert "illegal memory access" in result["cases"][1]["error"]


def test_a_step_past_its_time_is_stopped_and_reported(tmp_path):
    out = tmp_path / "gpu_check.json"
    # 11 forward/backward passes of WRN-28-10 take far longer than 8 s on a CPU: the step is cut off
    rc = _module().main(["--device", "cpu", "--dry", "--models", "wrn28_10", "--out", str(out), "--budget", "8"])
    step = json.loads(out.read_text())["steps"]["models"]
    assert rc == 1 and step["status"] == "timeout" and step["error"].startswith("stopped after 8 s")
    assert step["seconds"] < 30  # killed, not waited for
