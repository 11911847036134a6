"""The driver's checks that need more than the config itself: the model and method a config names
and their options (``check_config``), datasets on disk, every distinct model built on the meta
device, resources that exist, an address that answers, the store's path or server, where each
dataset's splits will live (``data.loader``, printed one line per dataset and loader: ``check_loaders``),
all before Ray starts (``preflight``); then, while Ray starts (``while_ray_starts``), what costs seconds and finds
no bad option: every model run on the meta device (shape errors; torch's meta kernels import
torch._dynamo) and the store opened (MLflow's import and schema check). ``harness.config`` checks
what needs no model, method or data and imports none of them; this module imports them when a
check asks (torch, the model zoo; never torchvision's datasets: the dataset checks read
``harness.data.specs`` only).
"""
from __future__ import annotations

import json
import math
import os
import socket
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from . import tracking
from .config import RunConfig
from .errors import ConfigError
from .registry import method_flag

SQLITE_TESTED_CONCURRENCY = 8  # trials writing one SQLite store at once without loss (tests/test_cluster.py)
_CHECKED: set = set()  # the (model, method) pairs check_config has accepted in this process


def option_key(e: ConfigError) -> ConfigError:
    """A model's own checks name an option ``model.width``; in a config it is ``model.options.width``
    (the model registry's error names ``model.name`` already)."""
    if e.key.startswith("model.") and not e.key.startswith(("model.options.", "model.name")):
        return ConfigError("model.options." + e.key[len("model."):], e.value, e.valid)
    return e


def check_config(cfg: RunConfig) -> None:
    """ConfigError for an unknown model or method, or an option of either that is unknown, of the
    wrong type (their annotations) or out of range (their own checks; a conv variant's on a probe
    conv): what ``RunConfig.from_dict`` leaves to the modules that declare them. Each distinct
    model and method is checked once per process."""
    from . import models
    from .methods import base
    from .owners import check_owners

    key = json.dumps([cfg.model.name, cfg.model.options, cfg.method.name, cfg.method.options,
                      cfg.train.schedule], sort_keys=True)
    if key in _CHECKED:
        return
    try:
        models.check_options(cfg.model.name, cfg.model.options)
    except ConfigError as e:
        raise option_key(e) from None
    method = base.build_method(cfg.method.name, cfg.method.options)
    check_owners(cfg, method)  # dbs with cosine_iter: two lr owners
    method.check(cfg)  # approximate on a Max-Min model
    _CHECKED.add(key)


def checked(d: dict | None) -> RunConfig:
    """``RunConfig.from_dict(d)`` with ``check_config``: the whole check of one trial's config."""
    cfg = RunConfig.from_dict(d)
    check_config(cfg)
    return cfg


def _first_line(error: Exception) -> str:
    lines = [line for line in f"{type(error).__name__}: {error}".splitlines() if line.strip()]
    return lines[0]


def _check_run_args(cpus_per_trial, gpus_per_trial, max_concurrent, max_failures) -> None:
    if not (isinstance(cpus_per_trial, (int, float)) and math.isfinite(cpus_per_trial) and cpus_per_trial > 0):
        raise ConfigError("--cpus-per-trial", cpus_per_trial, "a number > 0")
    if not (isinstance(gpus_per_trial, (int, float)) and math.isfinite(gpus_per_trial) and gpus_per_trial >= 0):
        raise ConfigError("--gpus-per-trial", gpus_per_trial, "a number >= 0")
    if max_concurrent is not None and max_concurrent <= 0:
        raise ConfigError("--max-concurrent", max_concurrent, "an integer > 0")
    if max_failures < 0:
        raise ConfigError("--max-failures", max_failures, "an integer >= 0")


def preflight(configs: list[dict], n_trials: int, tracking_uri: Optional[str], address: Optional[str],
              cpus_per_trial: float, max_concurrent: Optional[int], gpus_per_trial: float = 0,
              wait_for_resources: bool = False, check_models: bool = True, verbose: bool = False,
              connect: Optional[Callable[[], None]] = None) -> str:
    """Datasets on disk, models that build, resources that exist and the store's path or server,
    before any trial is queued (and, on this machine, before Ray starts); returns the store's URI.
    ``connect`` joins the cluster at ``address`` (harness.launcher.init_ray) where its resources must be
    asked. ``while_ray_starts`` does the rest of the checks."""
    from . import data

    reading = [c for c in configs if method_flag(c["method"]["name"], "uses_dataset")]  # the others make their own data
    _check_address(address)
    for name, root, download in {(c["data"]["dataset"], c["data"]["data_root"], c["data"]["download"])
                                 for c in reading}:
        if root is not None and not download and not Path(root).expanduser().is_dir():
            raise ConfigError("data.data_root", root, "an existing folder (searched first for the dataset), or null")
        if download and not data.downloadable(name):
            raise ConfigError("data.download", True, f"false: {name} cannot be downloaded")
        if not download:
            data.locate(name, root)  # DatasetNotFound before Ray starts, naming every place searched
    if check_models:  # a search's samples are gated one by one instead (an infeasible one is recorded)
        _check_builds(model_configs(configs))
    _check_resources(configs, address, cpus_per_trial, gpus_per_trial, wait_for_resources, verbose, connect)
    for line in check_loaders(reading, cpus_per_trial, gpus_per_trial):
        print(line, flush=True)
    uri = tracking.resolve_uri(tracking_uri)
    tracking.check_reachable(uri, open_store=False)
    if uri.startswith("sqlite:"):
        parallel = min(n_trials, max_concurrent or n_trials, int((os.cpu_count() or 1) / cpus_per_trial))
        if address:
            print("warning: a SQLite store is one file on this machine; trials on other nodes cannot write to "
                  "it. Use an MLflow server (--tracking-uri http://...), see README 'A Ray cluster'.", flush=True)
        elif parallel > SQLITE_TESTED_CONCURRENCY:
            print(f"warning: up to {parallel} trials may write to SQLite at once; it is tested up to "
                  f"{SQLITE_TESTED_CONCURRENCY}. Use --max-concurrent {SQLITE_TESTED_CONCURRENCY} or an MLflow server.",
                  flush=True)
    return uri


def _trial_device(device: str, gpus_per_trial: float) -> str:
    """Where a trial's tensors will live, as the driver can tell: a GPU when the trial is given one
    or names one, else the CPU (Ray hides the GPUs from a trial given none)."""
    return device if device.startswith("cuda") else ("cuda" if gpus_per_trial > 0 else "cpu")


def check_loaders(configs: list[dict], cpus_per_trial: float, gpus_per_trial: float = 0) -> list[str]:
    """``data.loader`` of each distinct data section resolved against the budget of the trial's device
    (harness.data.choose_loader), and the settings only a GPU can run; returns one line per
    distinct dataset and choice, what the driver prints before training. ConfigError for a
    resident loader that cannot fit, fp16 or nvjpeg decoding on a CPU trial."""
    from . import data

    lines, budgets = [], {}
    for c in configs:
        cfg = RunConfig.from_dict(c)
        d, device = cfg.data, _trial_device(cfg.train.device, gpus_per_trial)
        if device == "cpu" and cfg.train.precision == "fp16":
            raise ConfigError("train.precision", "fp16", "fp32 or bf16 on a CPU trial (fp16 autocast with a "
                              "GradScaler needs CUDA: pass --gpus-per-trial or train.device=cuda)")
        if device == "cpu" and d.decode_on_device:
            raise ConfigError("data.decode_on_device", True, "false on a CPU trial (nvjpeg decodes on CUDA only: "
                              "pass --gpus-per-trial or train.device=cuda)")
        measurable = device == "cpu" or d.resident_max_gb is not None or _local_gpus() > 0
        if not measurable:  # a GPU on another node: the trial measures its own free memory
            line = f"{d.dataset}: {d.loader} (budget from each trial's GPU memory)"
        else:
            if device not in budgets and d.resident_max_gb is None:
                budgets[device] = data.budget_bytes(d, device)
            budget = data.budget_bytes(d, device) if d.resident_max_gb is not None else budgets[device]
            line = data.choose_loader(d, budget).line(data.workers_per_trial(d, cpus_per_trial))
        if line not in lines:
            lines.append(line)
    return lines


def model_configs(configs: list[dict]) -> list[dict]:
    """The configs whose ``model.name`` a trial builds (an experiment registered ``builds_model=False``
    builds a network of its own)."""
    return [c for c in configs if method_flag(c["method"]["name"], "builds_model")]


def while_ray_starts(configs: list[dict], uri: str, check_models: bool = True,
                     then: Optional[Callable[[], object]] = None) -> Future:
    """The driver's slow checks in a thread, started just before ``ray.init`` (which mostly waits on
    Ray's own processes): every model of ``model_configs(configs)`` run on the meta device, the store
    opened, then ``then()`` (the launch's own store queries), whose value is the future's result. The
    caller joins it (``.result()`` raises its ConfigError) before any trial is queued; a failing
    model leaves the store untouched."""
    def slow_checks():
        if check_models:
            _check_models(model_configs(configs))
        tracking.check_reachable(uri)
        return then() if then is not None else None

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-checks")
    try:
        return executor.submit(slow_checks)
    finally:
        executor.shutdown(wait=False)  # the thread ends with its one task


def _check_address(address: Optional[str]) -> None:
    """A Ray address nothing answers at fails in seconds, not after Ray's minutes of reconnecting."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.rpartition("://")[2].rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--address", address, "host:port of a Ray head (HEAD:6379), ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConfigError("--address", address, f"the address of a running Ray cluster (nothing answers at "
                                                f"{host}:{port}: {e.strerror or e})") from None


def _local_gpus() -> int:
    """GPUs on this machine as Ray will count them, without importing torch when no CUDA device node
    exists (the common CPU-only case; torch's import costs a second or two)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1") or not any(
            Path("/dev").glob("nvidia[0-9]*")):
        return 0
    import torch

    return torch.cuda.device_count()


def _check_resources(configs: list[dict], address: Optional[str], cpus_per_trial: float, gpus_per_trial: float,
                     wait: bool, verbose: bool, connect: Optional[Callable[[], None]] = None) -> None:
    """Trials that no node can hold, or that need a GPU where none is, would wait or fail forever:
    refuse before any is queued. On this machine that needs no Ray; a cluster is asked (``wait``:
    queue them anyway, for an autoscaling cluster whose nodes join later)."""
    import ray

    if address is None and not ray.is_initialized():
        where, nodes = "this machine", [{"CPU": float(os.cpu_count() or 1), "GPU": float(_local_gpus())}]
    else:
        if not ray.is_initialized():
            if connect is None:
                raise ConfigError("--address", address, "a cluster this check is given a way to join (connect)")
            connect()
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        where = f"the cluster's {len(nodes)} node(s)"
    if wait:
        return
    have = "; ".join(f"{n.get('CPU', 0):g} CPUs and {n.get('GPU', 0):g} GPUs" for n in nodes) or "none"
    hint = "; on an autoscaling cluster --wait-for-resources queues the trials until nodes join" if address else ""
    cpus_ok = any(n.get("CPU", 0) >= cpus_per_trial for n in nodes)
    gpus_ok = any(n.get("GPU", 0) >= gpus_per_trial for n in nodes)
    if not (cpus_ok and gpus_ok and any(n.get("CPU", 0) >= cpus_per_trial and n.get("GPU", 0) >= gpus_per_trial
                                        for n in nodes)):
        key, value = ("--gpus-per-trial", gpus_per_trial) if not gpus_ok else ("--cpus-per-trial", cpus_per_trial)
        raise ConfigError(key, value, f"at most what one node has: {where} has {have}{hint}")
    gpus = max(n.get("GPU", 0) for n in nodes)
    for device in sorted({c["train"]["device"] for c in configs if c["train"]["device"].startswith("cuda")}):
        index = int(device.partition(":")[2] or 0)
        if index >= gpus:
            raise ConfigError("train.device", device, f"auto or cpu, or a GPU that exists: {where} has {have}{hint}")
        if address and gpus_per_trial == 0 and any(n.get("GPU", 0) == 0 for n in nodes):
            raise ConfigError("train.device", device, "auto or cpu with --gpus-per-trial 0: trials may land on "
                                                      "nodes without a GPU (pass --gpus-per-trial)")


def _distinct_models(configs: list[dict]):
    """(model section, dataset, input shape, classes) of each distinct model and its input."""
    from . import data

    seen = set()
    for c in configs:
        d, m = c["data"], c["model"]
        key = json.dumps([m, d["dataset"], d["image_size"], d["classes"]], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            yield (m, d["dataset"], *data.nominal_shape(d["dataset"], d["image_size"], d["classes"]))


def _check_builds(configs: list[dict]) -> None:
    """Every distinct model built, and thrown away, on the meta device without initial values (a
    tensor without storage has none to draw, and torch's meta kernels for the draws import
    torch._dynamo, 1-2 s): the builders' own range checks (a width > 0, a dropout in [0, 1)) before
    Ray starts, in milliseconds. Any other failure is left to ``_check_models`` (while Ray starts),
    which reports it with the model and its input."""
    import torch
    from torch.overrides import TorchFunctionMode

    from . import measure, models

    draws = {getattr(torch.Tensor, f) for f in ("normal_", "uniform_", "fill_", "zero_", "bernoulli_", "random_",
                                                  "exponential_", "log_normal_", "cauchy_", "geometric_")}

    class NoInitialValues(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return args[0] if func in draws else func(*args, **(kwargs or {}))

    for m, _, shape, classes in _distinct_models(configs):
        try:
            options, _ = measure.input_options(m["name"], {**m["options"], "num_classes": classes}, shape)
            with torch.device("meta"), NoInitialValues():
                models.build(m["name"], **options)
        except ConfigError as e:
            raise option_key(e) from None
        except Exception:  # noqa: BLE001  (a shape or meta-device failure: _check_models names it)
            continue


def _check_models(configs: list[dict]) -> None:
    """Every distinct model builds and runs at its dataset's registered input size, counted on the
    meta device as a trial will count it: a bad option is found here, not in every trial."""
    from . import measure

    for m, dataset, shape, classes in _distinct_models(configs):
        try:
            measure.profile_model(m["name"], {**m["options"], "num_classes": classes}, shape)
        except ConfigError as e:
            raise option_key(e) from None
        except Exception as e:  # a shape error deep in the model: name the model and the input
            raise ConfigError("model", {"name": m["name"], "options": m["options"]},
                              f"a model that runs on {dataset}'s {'x'.join(map(str, shape))} images "
                              f"({_first_line(e)})") from None
