"""Ctrl-C and --resume tell the truth (issue 16), on real Ray and real MLflow: a sweep interrupted with
SIGINT exits 130, its summary shows every trial as its MLflow run holds it and says how to continue;
``--resume`` into another store is refused naming both stores, and into the same store continues the
launch. The sweep file lies outside sweeps/, so ``report`` and ``reproduce`` are checked on it too."""
import os
import re
import signal
import subprocess
import types

import pytest
import yaml


from . import launches, procs

pytestmark = pytest.mark.slow

NAME = "interrupt_resume"
SWEEP = launches.digits_sweep(NAME, 12, milestone=9)
SUMMARY_LINE = re.compile(r"^  (FINISHED|FAILED|KILLED)\s+(\S+)\s+epochs=(\d+)", re.M)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """One launch into A.db, interrupted with SIGINT (as Ctrl-C sends it) after the first trial's
    second epoch, while the second trial waits (--max-concurrent 1)."""
    tmp = tmp_path_factory.mktemp("interrupt")
    sweep_file = tmp / "my_sweep.yaml"  # a user's own sweep file, outside sweeps/
    sweep_file.write_text(yaml.safe_dump(SWEEP))
    store_a = f"sqlite:///{tmp / 'A.db'}"
    storage = tmp / "ray"
    env = {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.getcwd()}
    common = [sweep_file, "--profile", "smoke", "--storage-path", storage, "--quiet", "--max-concurrent", "1"]
    log = tmp / "interrupted.log"
    driver = procs.start(launches.harness("run", *common, "--tracking-uri", store_a), log, env)
    try:
        procs.wait_for(lambda: any(len(launches.epochs(store_a, r)) >= 2
                                   for r in launches.runs(store_a, NAME).values()), 240,
                       "two epochs of the first trial", every_s=0.2)
        os.killpg(driver.pid, signal.SIGINT)  # to the driver's process group, as Ctrl-C in a terminal
        rc = driver.wait(timeout=180)
    finally:
        procs.stop(driver, signal.SIGKILL)
        procs.kill_matching(str(storage))
    return types.SimpleNamespace(tmp=tmp, sweep_file=sweep_file, store_a=store_a, storage=storage, env=env,
                                 common=common, rc=rc, log=log.read_text(), runs=launches.runs(store_a, NAME))


def test_ctrl_c_exits_130_and_the_summary_shows_each_trial_as_the_store_holds_it(interrupted):
    out = interrupted.log
    assert interrupted.rc == 130, out[-3000:]
    summary = {name: (status, int(epochs)) for status, name, epochs in SUMMARY_LINE.findall(out)}
    assert summary, out[-3000:]
    runs = interrupted.runs
    assert set(summary) == set(runs)  # every run the store holds is in the summary, and no other
    for name, (status, epochs) in summary.items():
        assert runs[name].info.status == status, (name, status, runs[name].info.status)
        assert status != "FINISHED" or epochs == 12
    assert "KILLED" in {s for s, _ in summary.values()}
    assert "--resume" in out and "never started" in out


def test_resume_continues_only_the_launch_of_the_same_store(interrupted):
    t = interrupted
    store_b = f"sqlite:///{t.tmp / 'B.db'}"
    refused = subprocess.run(launches.harness("run", *t.common, "--tracking-uri", store_b, "--resume"),
                             env={**os.environ, **t.env},
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert t.store_a in refused.stderr and store_b in refused.stderr and "Traceback" not in refused.stderr
    assert not (t.tmp / "B.db").exists()  # refused before anything was written

    log = t.tmp / "resumed.log"
    launches.resume_finishes([*t.common, "--tracking-uri", t.store_a], t.env, log, t.storage, t.store_a, NAME, 12,
                             before=t.runs)
    assert {s for s, _, _ in SUMMARY_LINE.findall(log.read_text())} == {"FINISHED"}

    # a sweep file outside sweeps/ reports from the store that has its runs, and reproduces
    report = subprocess.run(launches.harness("report", t.sweep_file, "--tracking-uri", t.store_a, "--out",
                                             t.tmp / "reports"),
                            env={**os.environ, **t.env}, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and (t.tmp / "reports" / "interrupt-resume.md").is_file(), report.stderr[-3000:]
    again = subprocess.run(launches.harness("reproduce", *t.common, "--tracking-uri", t.store_a, "--out",
                                            t.tmp / "again"),
                           env={**os.environ, **t.env}, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped 2 cell(s)" in again.stdout and (t.tmp / "again" / "interrupt-resume.md").is_file()
