"""SIGINT and SIGTERM at every moment of a launch end with the store and the summary in agreement
(issue 22), on real Ray and a real SQLite MLflow store: before Ray is up, while the trials start,
mid-epoch, and twice. Each case asserts what the store holds (every run that was started closed
KILLED with an end time, none RUNNING), that the summary claims exactly those statuses, the exit
code (130 SIGINT, 143 SIGTERM), no traceback, and that ``--resume`` then finishes every trial with
every epoch once."""
import os
import re
import signal
import subprocess
import time
import types

import pytest


from . import launches, procs

pytestmark = pytest.mark.slow

NAME = "signals"
EPOCHS = 8
SWEEP = launches.digits_sweep(NAME, EPOCHS, milestone=6)
SUMMARY_LINE = re.compile(r"^  (\S+)\s+(\S+)\s+epochs=(\d+)", re.M)


def _launch(tmp, when, sig, twice=False, to_group=True):
    """Start a launch, wait for ``when(store)``, send ``sig`` (to the process group, as a terminal's
    Ctrl-C does, or to the driver alone, as SLURM and Kubernetes do), again 0.3 s later if ``twice``."""
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    storage = tmp / "ray"
    driver, common, env, log = launches.start(tmp, SWEEP, store, storage, "stopped.log")
    try:
        procs.wait_for(lambda: when(store, log), 240, "the moment to send the signal", every_s=0.05)
        for _ in range(2 if twice else 1):
            if to_group:
                os.killpg(driver.pid, sig)
            else:
                os.kill(driver.pid, sig)
            time.sleep(0.3)
        rc = driver.wait(timeout=180)
    finally:
        procs.stop(driver, signal.SIGKILL)
        procs.kill_matching(str(storage))
    return types.SimpleNamespace(tmp=tmp, store=store, storage=storage, env=env, common=common, rc=rc,
                                 out=log.read_text(), runs=launches.runs(store, NAME))


def _agrees(t, code):
    """Exit code, no traceback, every run closed with an end time, the summary equal to the store."""
    assert t.rc == code, t.out[-3000:]
    assert "Traceback" not in t.out and "SIGTERM received at time" not in t.out, t.out[-3000:]
    for name, run in t.runs.items():
        assert run.info.status in ("KILLED", "FINISHED"), (name, run.info.status)
        assert run.info.end_time, name
    summary = {name: status for status, name, _ in SUMMARY_LINE.findall(t.out.split("\nsummary of", 1)[-1])}
    assert summary == {name: run.info.status for name, run in t.runs.items()}, t.out[-3000:]


def _resume_finishes(t):
    launches.resume_finishes(t.common, t.env, t.tmp / "resumed.log", t.storage, t.store, NAME, EPOCHS, before=t.runs)


def _epochs_logged(n):
    return lambda store, log: any(len(launches.epochs(store, r)) >= n for r in launches.runs(store, NAME).values())


def test_sigint_before_ray_is_up_records_nothing_and_says_so(tmp_path):
    # the driver's first line is printed before Ray starts (the checks), well inside the first second
    t = _launch(tmp_path, lambda store, log: "profile smoke" in log.read_text(), signal.SIGINT)
    assert t.rc == 130, t.out[-3000:]
    assert "Traceback" not in t.out
    assert "stopped by SIGINT before any trial ran" in t.out
    assert t.runs == {}  # no trial ran, no run claims otherwise


def test_sigterm_while_trials_start_closes_every_started_run(tmp_path):
    # the first trial's run exists, its first epoch not yet logged
    t = _launch(tmp_path, lambda store, log: launches.runs(store, NAME), signal.SIGTERM, to_group=False)
    _agrees(t, 143)
    assert "stopped by SIGTERM" in t.out and "--resume" in t.out
    assert any(r.info.status == "KILLED" for r in t.runs.values())
    _resume_finishes(t)


def test_sigint_mid_epoch_then_resume(tmp_path):
    t = _launch(tmp_path, _epochs_logged(2), signal.SIGINT)
    _agrees(t, 130)
    assert "interrupted (SIGINT)" in t.out and "never started" in t.out
    # a resume with other settings would silently keep the launch's own: refused, naming what changed
    held = {name: (r.info.status, r.info.end_time) for name, r in launches.runs(t.store, NAME).items()}
    changed = subprocess.run(launches.harness("run", *t.common, "--resume", "--set", "train.lr=0.01"),
                             env={**os.environ, **t.env}, capture_output=True, text=True, timeout=120)
    assert changed.returncode == 2 and "--set was (none), now train.lr=0.01" in changed.stderr, changed.stderr
    sweep_file = t.common[0]
    original = sweep_file.read_text()
    sweep_file.write_text(original.replace(f"epochs: {EPOCHS}", f"epochs: {EPOCHS + 1}"))
    edited = subprocess.run(launches.harness("run", *t.common, "--resume"), env={**os.environ, **t.env},
                            capture_output=True, text=True, timeout=120)
    assert edited.returncode == 2 and "the sweep file changed since" in edited.stderr, edited.stderr
    sweep_file.write_text(original)
    assert {name: (r.info.status, r.info.end_time) for name, r in launches.runs(t.store, NAME).items()} == held
    _resume_finishes(t)


def test_double_sigint_still_saves_and_closes(tmp_path):
    t = _launch(tmp_path, _epochs_logged(1), signal.SIGINT, twice=True)
    _agrees(t, 130)
    assert "already stopping" in t.out
    _resume_finishes(t)


def test_sigterm_mid_epoch_exits_143_with_a_summary(tmp_path):
    t = _launch(tmp_path, _epochs_logged(2), signal.SIGTERM, to_group=False)
    _agrees(t, 143)
    assert any(r.info.status == "KILLED" for r in t.runs.values())
    assert "failure_reason" in next(r for r in t.runs.values() if r.info.status == "KILLED").data.tags
