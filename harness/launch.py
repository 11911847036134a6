"""A launch's record beside Tune's state (``harness-launch.json``): which sweep, profile and store it
writes to and what it was started with, so ``--resume`` continues only the launch it names, into the
store it wrote to, with the settings it had (a change would be silently ignored: its trials' configs
were fixed when it started)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Optional

from .catalog import Sweep
from .errors import ConfigError

LAUNCH_FILE = "harness-launch.json"  # in each Tune experiment folder: the sweep, profile and store it writes to


def latest(sweep: Sweep, profile: str, storage: Path, uri: str) -> tuple[Path, dict]:
    """The last launch of ``sweep`` at ``profile`` under ``storage`` that wrote to the store ``uri``;
    one bound to another store is never continued into this one (ConfigError naming both)."""
    from ray.tune import Tuner

    found = sorted(storage.glob(f"{sweep.name}-{profile}-*"), key=lambda p: p.stat().st_mtime)
    launches = [(p, json.loads((p / LAUNCH_FILE).read_text())) for p in found if (p / LAUNCH_FILE).is_file()]
    mine = [(p, launch) for p, launch in launches if launch.get("tracking_uri") == uri]
    # a launch stopped before Tune wrote its state (a signal while Ray started) has nothing to continue
    continuable = [(p, launch) for p, launch in mine if Tuner.can_restore(str(p))]
    if continuable:
        return continuable[-1]
    if mine:
        raise ConfigError("--resume", f"{sweep.name} at profile {profile} into {uri}",
                          f"a launch Tune saved state for: the last one under {storage} ({mine[-1][0].name}) was "
                          "stopped before any trial ran; run it without --resume")
    if launches:
        raise ConfigError("--resume", f"{sweep.name} at profile {profile} into {uri}",
                          f"a launch that wrote to this store: the last one under {storage} ({launches[-1][0].name}) "
                          f"wrote to {launches[-1][1].get('tracking_uri')}; pass that --tracking-uri to continue it")
    raise ConfigError("--resume", f"{sweep.name} at profile {profile}",
                      f"a sweep started before under {storage} (none found; run it without --resume)")


def settings_of(sweep: Sweep, sets=(), dataset: Optional[str] = None, **search) -> dict:
    """What a launch was started with beyond the sweep's name and profile: ``--resume`` continues it only
    with the same (its trials' configs were fixed at launch; a change would be silently ignored)."""
    body = {"base": sweep.base, "rows": sweep.rows, "axes": sweep.axes, "profiles": sweep.profiles,
            "search": sweep.search}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"sets": list(sets or []), "dataset": dataset, "sweep_digest": digest,
            **{k: v for k, v in search.items() if v is not None}}


def check_same(launch: dict, settings: Optional[dict]) -> None:
    """ConfigError naming what differs between the launch being resumed and this command."""
    if not settings:
        return
    names = {"sets": "--set", "dataset": "--dataset", "num_samples": "--num-samples", "search_seed": "--search-seed",
             "algorithm": "--algorithm"}
    changed = []
    for key, flag in names.items():  # settings_of leaves out an unset option; a record without "sets" predates them
        if (key in launch or "sets" in launch) and launch.get(key) != settings.get(key):
            changed.append(f"{flag} was {_shown(launch.get(key))}, now {_shown(settings.get(key))}")
    if "sweep_digest" in launch and launch["sweep_digest"] != settings.get("sweep_digest"):
        changed.append(f"the sweep file changed since (digest {launch['sweep_digest']}, now {settings['sweep_digest']})")
    if changed:
        raise ConfigError("--resume", "; ".join(changed),
                          "the launch's own settings (its trials' configs are fixed; run without --resume for a "
                          "new launch, or --resume with the settings it had)")


def _shown(value) -> str:
    if isinstance(value, list):
        return " ".join(value) if value else "(none)"
    return "(none)" if value is None else str(value)


def open_launch(sweep: Sweep, profile: str, storage: Path, uri: str, resume: bool, settings: Optional[dict] = None,
            **extra) -> tuple[str, Optional[Path], dict]:
    """(the Tune experiment's name, the folder to restore or None, the launch record)."""
    if resume:
        folder, launch = latest(sweep, profile, storage, uri)
        check_same(launch, settings)
        return folder.name, folder, launch
    name = f"{sweep.name}-{profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    launch = {"sweep": sweep.name, "profile": profile, "tracking_uri": uri, **(settings or {}), **extra}
    folder = storage / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LAUNCH_FILE).write_text(json.dumps(launch))
    return name, None, launch
