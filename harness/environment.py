"""What a run ran on: every installed distribution and its version, the sha256 digest of the
requirements.lock it was installed from, Python, the platform, torch, and CUDA, cuDNN and the NVIDIA
driver where they are present.

``describe()`` returns it as a dict: each new trial run logs it as the artifact ``environment.json``
with the tag ``lock_digest`` (harness.tracking), and ``harness env [--json]`` prints it, as text laid
out like ``python -m torch.utils.collect_env`` (``format_text``) or as JSON.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import sys
from pathlib import Path
from typing import Optional

LOCK_NAME = "requirements.lock"
# an installed copy of harness (site-packages, Ray's py_modules) has no checkout and so no lock
NO_LOCK = "none"


def lock_path() -> Optional[Path]:
    """The requirements.lock of the checkout this package is imported from, or None."""
    path = Path(__file__).resolve().parents[1] / LOCK_NAME
    return path if path.is_file() else None


def lock_digest(path: Optional[Path] = None) -> str:
    """sha256 of the lock file's bytes, hex; ``NO_LOCK`` when there is none."""
    path = lock_path() if path is None else path
    if path is None or not path.is_file():
        return NO_LOCK
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lock_entries(text: str) -> list[tuple[str, list[str]]]:
    """(requirement, its options such as ``--hash=sha256:...``) for each entry of a pip-compile lock,
    continuation lines joined, comments dropped."""
    entries = []
    for line in text.replace("\\\n", " ").splitlines():
        words = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].split()  # pip's comments start at a '#' after a space
        if words:
            entries.append((words[0], words[1:]))
    return entries


def locked_versions(text: str) -> dict[str, str]:
    """{normalized name: version} of a lock's ``name==version`` entries."""
    pins = (req.split(";", 1)[0].split("==", 1) for req, _ in lock_entries(text) if "==" in req)
    return {normalize(name.split("[", 1)[0]): version.strip() for name, version in pins}


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares them (and as requirements.lock writes them)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions() -> dict[str, str]:
    """{normalized name: version} of every distribution on sys.path; the first of a name wins, as
    for imports."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:  # a half-removed install leaves a dist-info folder without metadata
            found.setdefault(normalize(name), dist.version)
    return dict(sorted(found.items()))


def _driver_version() -> Optional[str]:
    """The NVIDIA driver's version through NVML (nvidia-ml-py), or None without a GPU."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver loaded: a CPU machine, or a CUDA build of torch without a GPU
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else version
    finally:
        pynvml.nvmlShutdown()


def describe() -> dict:
    """The environment as one JSON-serializable dict. ``cuda`` (the CUDA torch was built with),
    ``cudnn`` and ``nvidia_driver`` are absent where this torch or this machine has none."""
    import torch

    env: dict = {"python": platform.python_version(), "python_implementation": platform.python_implementation(),
                 "executable": sys.executable, "platform": platform.platform(), "machine": platform.machine(),
                 "torch": torch.__version__, "lock_digest": lock_digest()}
    if torch.version.cuda:
        env["cuda"] = torch.version.cuda
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if cudnn:
        env["cudnn"] = cudnn
    if torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        driver = _driver_version()
        if driver:
            env["nvidia_driver"] = driver
    env["distributions"] = distributions()
    return env


def format_text(env: dict) -> str:
    """``env`` as lines of ``key: value``, then every distribution as ``[pip] name==version``."""
    absent = "N/A"
    lines = [f"PyTorch version: {env['torch']}",
             f"CUDA used to build PyTorch: {env.get('cuda', absent)}",
             f"cuDNN version: {env.get('cudnn', absent)}",
             f"GPU models: {', '.join(env['gpus']) if env.get('gpus') else absent}",
             f"Nvidia driver version: {env.get('nvidia_driver', absent)}",
             f"OS: {env['platform']} ({env['machine']})",
             f"Python version: {env['python']} ({env['python_implementation']}, {env['executable']})",
             f"Lock digest ({LOCK_NAME} sha256): {env['lock_digest']}",
             "",
             f"Versions of installed distributions ({len(env['distributions'])}):"]
    lines += [f"[pip] {name}=={version}" for name, version in env["distributions"].items()]
    return "\n".join(lines)
