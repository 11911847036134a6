"""One prepared GPU check: every CUDA code path of the harness, run once, in one bounded script.

GPU time comes rarely and in short slots, so what needs a GPU is prepared here and runs in one go
(``benchmarks/gpu_check.sh`` sets up Python and calls this). Steps, in this order, each in its own
process (session) under a timeout, all within ``--budget`` seconds (480 by default, the 8 minutes a slot leaves):

  models      every registered model with every conv variant it accepts: built, then one forward
              and backward of a batch of 2 at the model's nominal input (its ``image_size`` default:
              32 px, 28 for the Fashion-MNIST models, 8 for digits), loss and gradients finite. A
              combination whose build raises ConfigError is recorded "invalid" with the message
              (the harness rejects it before Ray too), not a failure;
  gpu_tests   ``pytest -m gpu tests/``: the tests marked as needing CUDA (the loaders on the device);
  stream      only where harness/data/stream.py exists: a generated ImageNet-layout folder
              (``python -m harness.data.layout``), StreamLoader with nvjpeg (``decode_on_device``)
              against CPU decoding in workers, images/s each, and a few ResNet-50 steps at 224 px fed
              by it with the time spent waiting for data as a share of the step;
  sweep       ``harness run jiang_table_4_9 --profile smoke --gpus-per-trial 0.25`` into
              ``sqlite:///<out folder>/gpu.db``: four trials share the GPU; every run must finish;
  benchmarks  ``benchmarks/gpu.py --steps 20`` (ResNet-56 and AlexNet epochs under the switches).

Writes ONE JSON summary (``--out``, default ``$OUT/gpu_check.json``, else ./gpu_check.json) with
per step: status (passed / failed / timeout / skipped), seconds, error, and what it measured. Exit
0 only when every step passed; 1 otherwise; 3, having run nothing, when the device is CUDA and
there is none. ``--device cpu --dry`` runs the models step alone on the CPU (``--models`` picks a
few), which is how tests/test_gpu_check.py checks the enumeration without a GPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Seconds each at most, in the order run; together the 480 s of the default budget.
STEPS = {"models": 120, "gpu_tests": 60, "stream": 90, "sweep": 120, "benchmarks": 90}
DRY_STEPS = ("models",)
NO_CUDA = "no CUDA"


def _tail(text: str, chars: int = 2000) -> str:
    return text[-chars:] if text else ""


# ---- the steps, each run in a child process (``--step NAME``) that writes its result to ``--result`` ----

def step_models(args, result: dict, save) -> bool:
    import torch
    import torch.nn.functional as F

    from harness import models
    from harness.errors import ConfigError
    from harness.registry import CONVS

    device = torch.device(args.device)
    names = args.models.split(",") if args.models else models.names()
    convs = args.convs.split(",") if args.convs else CONVS.names()
    result.update(device=str(device), models=names, convs=convs, cases=[])
    ok = True
    for name in names:
        defaults = models.describe(name)["options"]
        shape = (defaults["in_channels"], defaults["image_size"], defaults["image_size"])
        for conv in convs:
            case = {"model": name, "conv": conv, "input": list(shape)}
            start = time.perf_counter()
            try:
                torch.manual_seed(0)
                try:
                    model = models.build(name, num_classes=10, conv=conv)
                except ConfigError as exc:
                    case.update(status="invalid", error=str(exc))
                    continue
                model.to(device).train()
                images = torch.randn(2, *shape, device=device)
                loss = F.cross_entropy(model(images), torch.tensor([0, 9], device=device))
                loss.backward()
                bad = [n for n, p in model.named_parameters() if p.requires_grad
                       and (p.grad is None or not torch.isfinite(p.grad).all())]
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if not torch.isfinite(loss) or bad:
                    case.update(status="failed", error=f"loss {loss.item()}; no or non-finite grad: {bad[:5]}")
                else:
                    case.update(status="passed", loss=round(loss.item(), 4))
            except Exception as exc:  # any other error in building or running a valid combination fails it
                case.update(status="failed", error=_tail(f"{type(exc).__name__}: {exc}", 500))
            finally:
                case["s"] = round(time.perf_counter() - start, 3)
                ok &= case.get("status") != "failed"
                result["cases"].append(case)
                save()  # a step cut off by its timeout still leaves the cases it ran
    return ok and any(case["status"] == "passed" for case in result["cases"])


def _run(cmd, timeout, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def step_sweep(args, result: dict, save) -> bool:
    out = Path(args.result).parent
    uri = f"sqlite:///{out / 'gpu.db'}"
    with tempfile.TemporaryDirectory() as tmp:
        cli = "import sys; from harness.cli import main; sys.exit(main())"
        cmd = [sys.executable, "-c", cli, "run", "jiang_table_4_9", "--profile", "smoke", "--gpus-per-trial", "0.25",
               "--tracking-uri", uri, "--quiet", "--storage-path", str(Path(tmp) / "ray")]
        result["command"] = " ".join(cmd[3:])
        proc = _run(cmd, timeout=args.budget, env={"HOME": tmp})
    result.update(returncode=proc.returncode, output_tail=_tail(proc.stdout + proc.stderr))
    if proc.returncode != 0:
        return False
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("search_parent") != "true"]
    result["runs"] = {r.info.run_name: r.info.status for r in runs}
    result["devices"] = sorted({r.data.tags.get("device", "?") for r in runs})
    return bool(runs) and all(r.info.status == "FINISHED" for r in runs)


def step_stream(args, result: dict, save) -> bool:
    if importlib.util.find_spec("harness.data.stream") is None:
        result["skipped"] = "harness/data/stream.py is missing"
        return False
    import torch
    import torch.nn.functional as F

    from harness import models
    from harness.data.folders import scan
    from harness.data.stream import StreamLoader

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "imagenet"
        proc = _run([sys.executable, "-m", "harness.data.layout", "--out", str(root), "--classes", "10",
                     "--per-class", "64", "--val-per-class", "4", "--size", "400x350", "--seed", "0",
                     "--threads", str(min(16, os.cpu_count() or 1))], timeout=90)
        if proc.returncode != 0:
            result["error"] = _tail(proc.stdout + proc.stderr)
            return False
        split = scan(root / "train")
        result["images"] = len(split)
        workers = min(8, os.cpu_count() or 1)
        cuda = device.type == "cuda"  # on a CPU (a dry check of this step) only CPU decoding exists
        for name, on_device in (("nvjpeg", True), ("cpu_decode", False)) if cuda else (("cpu_decode", False),):
            loader = StreamLoader(split, 64, device, mean, std, train=True, num_workers=workers,
                                  decode_on_device=on_device)
            list(loader.epoch(0, num_batches=1))  # warm-up: workers, nvjpeg's handles, cuDNN
            torch.cuda.synchronize() if cuda else None
            start, seen = time.perf_counter(), 0
            for x, y in loader.epoch(1):
                assert x.shape[1:] == (3, 224, 224) and x.device.type == device.type and torch.isfinite(x).all()
                seen += len(y)
            torch.cuda.synchronize() if cuda else None
            result[f"{name}_images_per_s"] = round(seen / (time.perf_counter() - start), 1)
            result[f"{name}_workers"] = workers
            save()
        if cuda:
            result["nvjpeg_over_cpu_x"] = round(result["nvjpeg_images_per_s"] / result["cpu_decode_images_per_s"], 2)
        # ResNet-50 at 224 px fed by the nvjpeg loader: the share of each step spent waiting for its batch.
        model = models.build("resnet50", num_classes=10, image_size=224).to(device, memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loader = StreamLoader(split, 64, device, mean, std, train=True, num_workers=workers, decode_on_device=cuda,
                              channels_last=True)
        waits, steps = [], []
        batches = iter(loader.epoch(2, num_batches=len(loader) if cuda else 3))
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            torch.cuda.synchronize() if cuda else None
            t1 = time.perf_counter()
            if batch is None:
                break
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = F.cross_entropy(model(batch[0]), batch[1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            torch.cuda.synchronize() if cuda else None
            waits.append(t1 - t0)
            steps.append(time.perf_counter() - t0)
        # the first step includes cuDNN's autotuning: left out
        result["resnet50_224_data_share"] = round(sum(waits[1:]) / sum(steps[1:]), 4)
        result["resnet50_224_step_s"] = round(sum(steps[1:]) / len(steps[1:]), 4)
        result["resnet50_precision"] = "bf16 autocast" if cuda else "fp32"
        result["resnet50_decode"] = "nvjpeg" if cuda else "cpu"
        result["data_share_target"] = 0.05
    return True


def step_benchmarks(args, result: dict, save) -> bool:
    proc = _run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--steps", "20"], timeout=args.budget)
    result.update(returncode=proc.returncode, output_tail=_tail(proc.stderr, 1500))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if lines:
        result["line"] = json.loads(lines[-1])
    return proc.returncode == 0 and bool(lines)


def step_gpu_tests(args, result: dict, save) -> bool:
    proc = _run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
                timeout=args.budget)
    result.update(returncode=proc.returncode, output_tail=_tail(proc.stdout + proc.stderr))
    # "skipped" in pytest's last line on a CUDA machine means a test found no CUDA: not a pass
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    result["summary_line"] = last
    return proc.returncode == 0 and " passed" in last and "skipped" not in last


STEP_FUNCTIONS = {"models": step_models, "gpu_tests": step_gpu_tests, "sweep": step_sweep, "stream": step_stream,
                  "benchmarks": step_benchmarks}


def run_step(args) -> int:
    result: dict = {}
    path = Path(args.result)

    def save():
        path.write_text(json.dumps(result, default=str))

    try:
        ok = STEP_FUNCTIONS[args.step](args, result, save)
    except Exception:
        result["error"] = _tail(traceback.format_exc())
        ok = False
    save()
    return 0 if ok else 1


# ---- the driver ----

def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def write_summary(path: Path, summary: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="the JSON summary (default $OUT/gpu_check.json or ./gpu_check.json)")
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (with --dry: the enumeration only)")
    ap.add_argument("--dry", action="store_true", help="run the models step alone (for a CPU test of it)")
    ap.add_argument("--models", default="", help="comma-separated models for the models step (default: all)")
    ap.add_argument("--convs", default="", help="comma-separated conv variants (default: all)")
    ap.add_argument("--budget", type=float, default=480, help="seconds for all steps together")
    ap.add_argument("--step", choices=sorted(STEP_FUNCTIONS), help=argparse.SUPPRESS)  # a child: one step
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        return run_step(args)

    out = Path(args.out or Path(os.environ.get("OUT") or ".") / "gpu_check.json").resolve()
    summary = {"device": args.device, "dry": args.dry, "budget_s": args.budget, "steps": {},
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if args.device.startswith("cuda") and not cuda_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing was run")
        summary.update(status=NO_CUDA, passed=False)
        write_summary(out, summary)
        return 3
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    summary["gpu"] = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    summary["torch"] = torch.__version__
    deadline = time.monotonic() + args.budget
    for name in DRY_STEPS if args.dry else STEPS:
        left = deadline - time.monotonic()
        entry = summary["steps"][name] = {}
        if left < 5:
            entry.update(status="skipped", error="no time left in the budget")
            continue
        limit = min(STEPS[name], left)
        result_path = out.with_name(f"{out.stem}.{name}.json")
        result_path.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--step", name, "--result", str(result_path), "--device", args.device,
               "--models", args.models, "--convs", args.convs, "--budget", str(max(1, limit - 10))]
        start = time.monotonic()
        # Its own session, so that a timeout ends the whole step: Ray's processes, DataLoader workers.
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=limit)
            status = "passed" if proc.returncode == 0 else "failed"
            error = "" if status == "passed" else _tail(stderr)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, stderr = proc.communicate()
            status, error = "timeout", f"stopped after {limit:.0f} s; " + _tail(stderr)
        try:
            detail = json.loads(result_path.read_text()) if result_path.is_file() else {}
        except json.JSONDecodeError:  # killed while writing it
            detail = {}
        result_path.unlink(missing_ok=True)
        if "cases" in detail:  # counted here too, so a step cut off by its timeout says how far it got
            detail["counts"] = {k: sum(c["status"] == k for c in detail["cases"])
                                for k in sorted({c["status"] for c in detail["cases"]})}
        if detail.get("skipped"):
            status, error = "skipped", detail["skipped"]
        entry.update(status=status, seconds=round(time.monotonic() - start, 1), error=error or detail.get("error", ""),
                     result=detail)
        print(f"gpu_check: {name}: {status} in {entry['seconds']} s", flush=True)
    summary["passed"] = all(s["status"] == "passed" for s in summary["steps"].values())
    summary["status"] = "passed" if summary["passed"] else "failed"
    summary["total_s"] = round(sum(s.get("seconds", 0) for s in summary["steps"].values()), 1)
    write_summary(out, summary)
    print(f"gpu_check: {summary['status']}; summary in {out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
