"""An on-disk cache of what ``harness.runs`` reads of a finished run beyond ``search_runs``: its typed
config and its per-epoch metric histories, so a second report on a tracking server reads none of them again.

One folder per store and experiment, ``<root>/<store digest>/<experiment id>/``, holding ``configs.json``
and ``history.json``: ``{run_id: {"stamp": "<status>:<end_time>", ...}}``. The root is ``$HARNESS_CACHE``,
else ``$XDG_CACHE_HOME/harness/runs`` (``~/.cache/harness/runs``). Deleting it is always safe.

An entry is used only while the run's status and end time are those it was written under: a run that is
still RUNNING is never written, and one that is reopened (``--resume``) and closed again has a new end
time, so it is read afresh. Run ids are random UUIDs, so a store recreated at the same URI never meets
another store's entries. Writing is best effort: a read-only home leaves reads as they were, uncached.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

TERMINAL = ("FINISHED", "FAILED", "KILLED")  # MLflow's end states; RUNNING and SCHEDULED runs still change


def root() -> Path:
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness" / "runs"


def stamp(run) -> Optional[str]:
    """What a cached entry of ``run`` (an MLflow Run) must match; None while the run can still change."""
    if run.info.status not in TERMINAL or not run.info.end_time:
        return None
    return f"{run.info.status}:{run.info.end_time}"


def plain(value) -> bool:
    """True when JSON gives ``value`` back with its types: a YAML date, or a mapping with a non-text key,
    would come back as something else (such a run is simply not cached)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False


class RunCache:
    """The cached entries of one experiment of one store (``part`` is "configs" or "history")."""

    def __init__(self, tracking_uri: str, experiment_id: str):
        digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
        self.folder = root() / digest / str(experiment_id)

    def read(self, part: str) -> dict:
        try:
            entries = json.loads((self.folder / f"{part}.json").read_text())
        except (OSError, ValueError):  # none yet, or a write cut short by a full disk: read afresh
            return {}
        return entries if isinstance(entries, dict) else {}

    def write(self, part: str, entries: dict) -> None:
        """Replace ``part`` whole (a reader in another process sees the old file or the new one)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{part}.", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, allow_nan=True)
            os.replace(tmp, self.folder / f"{part}.json")
        except OSError:
            Path(tmp).unlink(missing_ok=True)
