"""What every benchmark shares: the machine and versions it ran on, the load around a measurement,
CIFAR-10- and Fashion-MNIST-format datasets of random images, and the one JSON line each script ends with.

Other jobs may share the machine, so each measurement records ``os.getloadavg()`` before and after
it; a 1-minute load above the core count means the figure was taken under load (``under_load``).
"""
from __future__ import annotations

import json
import os
import pickle
import platform
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PYTHON = sys.executable


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """CPU, cores, memory, device and the versions that decide the numbers."""
    import mlflow
    import ray
    import torch
    import torchvision

    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        memory_gib = round(mem_kb / 2**20, 1)
    except (OSError, StopIteration):
        memory_gib = None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no GPU lent to this task)"
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib, "device": device,
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "ray": ray.__version__, "mlflow": mlflow.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join([Path(PYTHON).name, *sys.argv])}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def under_load(loads: dict) -> bool:
    cores = os.cpu_count() or 1
    return any(max(v["before"][0], v["after"][0]) > cores for v in loads.values())


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A cifar-10-batches-py folder of random images in the real pickle format (as tests/test_data.py
    writes it): 5 training batches, a test batch and batches.meta; rows are R, G, B planes."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    per_batch = -(-n_train // 5)
    left = n_train
    for b in range(1, 6):
        n = min(per_batch, left)
        left -= n
        batch = {"batch_label": f"training batch {b} of 5", "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "filenames": [f"{b}_{i}.png" for i in range(n)]}
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch))
    test = {"batch_label": "testing batch 1 of 1", "labels": rng.integers(0, 10, n_test).tolist(),
            "data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
            "filenames": [f"t_{i}.png" for i in range(n_test)]}
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)],
                                                        "num_vis": 3072, "num_cases_per_batch": per_batch}))
    return Path(root)


def write_fashion_mnist(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A FashionMNIST/raw folder of random 28x28 images in the real idx format (big-endian header:
    magic 0x0803 for images, 0x0801 for labels, then the dimensions), for timing where the real
    dataset is not on the machine (it comes from Debian's dataset-fashion-mnist, `make datasets`)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "FashionMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (folder / f"{part}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    return Path(root)


def emit(figure: str, value, target, better: str, **details) -> dict:
    """Print the script's one JSON line: the headline figure, its target, which way is better, details."""
    assert better in ("lower", "higher")
    line = {"figure": figure, "value": value, "target": target, "better": better, **details}
    if "load" in line:
        line["under_load"] = under_load(line["load"])
    line["machine"] = machine()
    print(json.dumps(line, default=float), flush=True)
    return line


@contextmanager
def in_folder(folder):
    """Work in ``folder`` for the block (a SQLite MLflow store puts run artifacts in ./mlruns)."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield Path(folder)
    finally:
        os.chdir(previous)


def harness_source() -> dict:
    """The harness code this run measured: the git commit and a digest of harness/**/*.py as they
    stand now (the working tree may hold uncommitted changes)."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted((root / "harness").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "harness"], capture_output=True,
                           text=True).stdout.strip()
    return {"git_head": head, "harness_dirty": bool(dirty), "harness_py_sha256": digest.hexdigest()[:16]}
