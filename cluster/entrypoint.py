"""What `ray submit cluster/<config>.yaml cluster/entrypoint.py -- <harness args>` runs on the head.

It runs the ``harness`` command inside the cluster: ``run`` and ``reproduce`` join the running Ray
cluster (``--address auto``) and log to the cluster's tracking server (``--tracking-uri
http://<head address>:5000``, started by tracking_server.sh) and keep Tune's state and checkpoints
on ``$HARNESS_RAY_RESULTS`` (shared storage, so ``--resume`` works after a driver restart), unless
the arguments say otherwise. The ``ray job submit`` equivalent (the head's dashboard listens on its
127.0.0.1 only: ``ray dashboard cluster/<config>.yaml`` forwards it to this machine's port 8265):

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python cluster/entrypoint.py run ...
"""
from __future__ import annotations

import os
import socket
import sys


def head_address() -> str:
    """The head's cluster-network address (what tracking_server.sh binds)."""
    if os.environ.get("RAY_HEAD_IP"):
        return os.environ["RAY_HEAD_IP"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
        return s.getsockname()[0]


def harness_args(argv: list[str], environ: dict | None = None) -> list[str]:
    """The harness command line for ``argv`` (what follows the script in ``ray submit``)."""
    environ = os.environ if environ is None else environ
    args = list(argv[1:] if argv[:1] == ["--"] else argv)
    if args and args[0] in ("run", "reproduce"):
        if "--address" not in args:
            args += ["--address", "auto"]
        if "--tracking-uri" not in args and not environ.get("MLFLOW_TRACKING_URI"):
            port = environ.get("HARNESS_MLFLOW_PORT", "5000")
            args += ["--tracking-uri", f"http://{environ.get('RAY_HEAD_IP') or head_address()}:{port}"]
        if "--storage-path" not in args and environ.get("HARNESS_RAY_RESULTS"):
            args += ["--storage-path", environ["HARNESS_RAY_RESULTS"]]
    return args


if __name__ == "__main__":
    from harness.cli import main

    sys.exit(main(harness_args(sys.argv[1:])))
