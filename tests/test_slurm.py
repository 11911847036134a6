"""cluster/slurm/harness.sbatch under a real SLURM (issue 24): Debian's slurm-wlm and munge started
in a temp folder as a two-node cluster on this machine (two slurmd, each a node with half the CPUs),
a smoke sweep submitted with ``sbatch --nodes 2`` (the head here, a worker by ``srun`` on the other
node, trials on both) into the job's own ``mlflow server`` (every run FINISHED, every epoch once),
and the time limit's stop: SIGTERM to the batch shell mid-sweep (as ``--signal=B:TERM@120`` sends it)
ends the job with exit 143, the summary and no run RUNNING, and a follow-up job
(``--dependency=afterany`` ... ``--resume``) finishes every trial in its own run. The two nodes
share one host, so the worker shares the head's store forwarder (cluster/slurm/ray_worker.sh)."""
import copy
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from harness import tracking

from . import procs
from .test_signals import SWEEP

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SBATCH = ROOT / "cluster" / "slurm" / "harness.sbatch"
COMMANDS = ["munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "scancel", "sinfo", "squeue"]
DONE = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root"
    missing = [c for c in COMMANDS if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]
    if missing:
        return f"no {', '.join(missing)} (Debian's slurm-wlm and munge: make system)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (Debian's munge package creates it: make system)"
    return None


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm():
    """A two-node SLURM cluster on this host (slurmctld, one slurmd per node, munged) whose every file
    is in a temp folder and whose ports are free ones; the daemons are stopped by PID at the end.
    Yields the environment that SLURM's commands need (SLURM_CONF)."""
    if why := _why_not():
        pytest.skip(why)
    # short: munged's socket path is under it (a socket path has < 108 characters)
    root = Path(tempfile.mkdtemp(prefix="slurm", dir="/tmp"))
    root.chmod(0o755)
    munge = root / "munge"
    munge.mkdir()
    # munged refuses a key or socket folder that others can write or that it cannot traverse
    munge.chmod(0o711)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o400)
    shutil.chown(munge, "munge", "munge")
    shutil.chown(key, "munge", "munge")
    sock = munge / "munge.socket"
    daemons = []
    try:
        daemons.append(subprocess.Popen(
            [_bin("munged"), "--foreground", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
             f"--seed-file={munge / 'munged.seed'}"],
            user="munge", group="munge", extra_groups=[], start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT))
        procs.wait_for(lambda: sock.exists() or daemons[0].poll() is not None, 30, "munged's socket")
        assert daemons[0].poll() is None, (munge / "munged.log").read_text()[-2000:]
        host = socket.gethostname().split(".")[0]  # hostname -s: slurmd finds its node by it
        found = subprocess.run([_bin("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
        cpus, memory = (int(re.search(rf"\b{k}=(\d+)", found).group(1)) for k in ("CPUs", "RealMemory"))
        nodes = {"n1": procs.free_port(), "n2": procs.free_port()}  # slurmd -N NAME: several on one host
        for d in ("state", "log", "spool-n1", "spool-n2"):
            (root / d).mkdir()
        conf = root / "slurm.conf"
        conf.write_text(f"""\
ClusterName=harness
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={procs.free_port()}
SlurmdPort={nodes['n1']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool-%n'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd-%n.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd-%n.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
""" + "".join(f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={max(1, cpus // 2)} "
                     f"RealMemory={memory // 2} State=UNKNOWN\n" for name, port in nodes.items())
          + "PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP\n")
        env = {**os.environ, "SLURM_CONF": str(conf)}
        # -D: in the foreground, so that each PID is ours to stop
        for daemon in ([_bin("slurmctld")], *([_bin("slurmd"), "-N", name] for name in nodes)):
            daemons.append(subprocess.Popen([*daemon, "-D", "-f", str(conf)], env=env, start_new_session=True,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))

        def idle():
            for d in daemons:
                assert d.poll() is None, "\n".join(p.read_text()[-2000:] for p in (root / "log").glob("*.log"))
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            return out.split() == ["idle"] * len(nodes)
        procs.wait_for(idle, 60, "both nodes to be idle in sinfo")
        yield env
    finally:
        for d in reversed(daemons):
            procs.stop(d)
        shutil.rmtree(root, ignore_errors=True)


def _sweep(tmp: Path, name: str, epochs: int) -> Path:
    sweep = copy.deepcopy(SWEEP)
    sweep["name"] = name
    sweep["base"]["train"].update(epochs=epochs, milestones=[max(1, epochs - 2)])
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _job_env(slurm: dict, tmp: Path) -> dict:
    """What every job of a test shares: its store (the job's own mlflow server serves it), a short
    TMPDIR for Ray's per-node folders, and the project on PYTHONPATH (the sweep's report builder)."""
    env = {**slurm, "HARNESS_STORE": f"sqlite:///{tmp / 'mlflow.db'}", "TMPDIR": str(tmp / "t"),
           "PYTHONPATH": str(ROOT), "HARNESS_MLFLOW_WORKERS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)  # unset: the job starts its own server
    # unset: the script's default (the submit folder) is under test; the suite's ray_session sets it
    env.pop("HARNESS_RAY_RESULTS", None)
    return env


def _submit(env: dict, tmp: Path, *args) -> str:
    # submitted from tmp: SLURM_SUBMIT_DIR, where the script keeps Tune's state and its logs
    out = subprocess.run(["sbatch", "--parsable", "--output", str(tmp / "job-%j.out"), *args], cwd=tmp, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def _job(env: dict, job_id: str) -> dict:
    out = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def _wait_job(env: dict, job_id: str, timeout_s: float) -> dict:
    return procs.wait_for(lambda: (j := _job(env, job_id)).get("JobState") in DONE and j, timeout_s,
                          f"job {job_id} to end", every_s=1)


def _runs(uri: str, name: str) -> dict:
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(name)
    return {r.info.run_name: r for r in c.search_runs([exp.experiment_id])} if exp else {}


def _epochs(uri: str, run) -> list:
    return sorted(m.step for m in tracking.client(uri).get_metric_history(run.info.run_id, "epoch_time_s"))


def _tracking_uri(out: str) -> str:
    found = re.search(r"--tracking-uri (http://127\.0\.0\.1:(\d+)) --address \S+:\d+", out)
    assert found, out[-4000:]  # the script's own server, by the URI every node reaches it at
    return found.group(1)


def _cleaned_up(tmp: Path, uri: str):
    """Nothing the jobs started outlives them: no Ray node, mlflow server or forwarder (by PID, the
    script's EXIT trap). What is left is killed, then reported."""
    forwarder = f"forward.py {uri.rpartition(':')[2]} "

    def left():
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if forwarder in cmd or (str(tmp) in cmd and ("ray" in cmd or "mlflow" in cmd)):
                pids.append((int(pid), cmd[:200]))
        return pids
    try:
        procs.wait_for(lambda: not left(), 30, "the jobs' Ray, forwarder and mlflow server to exit")
    except TimeoutError:
        leftover = left()
        for pid, _ in leftover:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise AssertionError(f"left running after the job: {leftover}") from None


@pytest.fixture
def job_tmp(slurm):
    """The test's submit folder; at the end no job of it is left (a failed test's included)."""
    tmp = Path(tempfile.mkdtemp(prefix="sj", dir="/tmp"))  # short: TMPDIR under it holds Ray's sockets
    (tmp / "t").mkdir()
    yield tmp
    user = pwd.getpwuid(os.getuid()).pw_name
    for cancel in (["--full", "--signal=KILL"], []):  # every process of every job in this cluster, then the jobs
        subprocess.run(["scancel", *cancel, "--user", user], env=slurm, capture_output=True)
    procs.wait_for(lambda: not subprocess.run(["squeue", "-h"], env=slurm, capture_output=True, text=True).stdout,
                   60, "the test's jobs to end")
    procs.kill_matching(str(tmp))
    shutil.rmtree(tmp, ignore_errors=True)


def test_sbatch_runs_a_sweep_on_two_nodes_into_its_own_mlflow_server(slurm, job_tmp):
    tmp, epochs = job_tmp, 3
    env = _job_env(slurm, tmp)
    sweep = _sweep(tmp, "slurm_smoke", epochs)
    job_id = _submit(env, tmp, "--nodes", "2", str(SBATCH), "run", str(sweep), "--profile", "smoke")
    job = _wait_job(env, job_id, 600)
    out = (tmp / f"job-{job_id}.out").read_text()
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", out[-4000:]
    uri = _tracking_uri(out)
    assert "Ray cluster of 2 node(s)" in out and "summary of 2 trials" in out
    store = env["HARNESS_STORE"]
    runs = _runs(store, "slurm_smoke")
    assert sorted(runs) == ["Re-impl.-seed0", "Re-impl.-seed1"]
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    for run in runs.values():
        assert _epochs(store, run) == list(range(1, epochs + 1))  # every epoch once
    assert len({r.data.tags["ray_node_id"] for r in runs.values()}) == 2  # a trial on each node
    assert (tmp / "ray_results").is_dir()  # Tune's state on the shared path a follow-up job resumes from
    logs = tmp / "logs" / f"slurm-{job_id}"
    assert {"mlflow-server.log", "ray-head.log", "ray-worker-n2.log", "ray-head"} <= {p.name for p in logs.iterdir()}
    _cleaned_up(tmp, uri)


def test_time_limit_sigterm_stops_cleanly_and_a_follow_up_job_resumes(slurm, job_tmp):
    tmp, epochs = job_tmp, 8
    env = _job_env(slurm, tmp)
    sweep = _sweep(tmp, "slurm_limit", epochs)
    args = [str(SBATCH), "run", str(sweep), "--profile", "smoke", "--max-concurrent", "1"]
    first = _submit(env, tmp, "--nodes", "1", *args)
    # queued now, as one would: it starts once the first job has ended, however it ended
    follow_up = _submit(env, tmp, "--nodes", "1", f"--dependency=afterany:{first}",
                        *args, "--resume")
    store = env["HARNESS_STORE"]

    def two_epochs():
        assert _job(env, first).get("JobState") in ("PENDING", "RUNNING"), (tmp / f"job-{first}.out").read_text()
        output = tmp / f"job-{first}.out"
        if not output.exists() or " --address " not in output.read_text():
            return False  # the store is the job's server's to create, as it starts
        try:
            return any(len(_epochs(store, r)) >= 2 for r in _runs(store, "slurm_limit").values())
        except Exception:  # noqa: BLE001
            return False
    procs.wait_for(two_epochs, 600, "two epochs logged", every_s=0.5)
    # what `--signal=B:TERM@120` does at the time limit: SIGTERM to the batch shell alone
    subprocess.run(["scancel", "--signal=TERM", "--batch", first], env=env, check=True)
    stopped_at = time.time()
    job = _wait_job(env, first, 300)
    stop_s = time.time() - stopped_at
    out = (tmp / f"job-{first}.out").read_text()
    assert job["ExitCode"] == "143:0", out[-4000:]
    assert "stopped by SIGTERM" in out and "summary of" in out and "--resume" in out, out[-4000:]
    assert "SIGTERM: passed to the driver" in out and "exit 143" in out, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    runs = _runs(store, "slurm_limit")
    assert runs and all(r.info.status in ("KILLED", "FINISHED") and r.info.end_time for r in runs.values())
    assert any(r.info.status == "KILLED" for r in runs.values())
    assert stop_s < 120, stop_s  # the lead time harness.sbatch asks for (--signal=B:TERM@120): 15 s here

    job = _wait_job(env, follow_up, 600)
    out = (tmp / f"job-{follow_up}.out").read_text()
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", out[-4000:]
    resumed = _runs(store, "slurm_limit")
    assert sorted(resumed) == ["Re-impl.-seed0", "Re-impl.-seed1"]
    assert {r.info.status for r in resumed.values()} == {"FINISHED"}
    for name, before in runs.items():  # a stopped trial continued its own run
        assert resumed[name].info.run_id == before.info.run_id
    for run in resumed.values():
        assert _epochs(store, run) == list(range(1, epochs + 1))  # every epoch once
    assert _tracking_uri(out) == _tracking_uri((tmp / f"job-{first}.out").read_text())  # the launch's own
    _cleaned_up(tmp, _tracking_uri(out))


def test_a_job_array_takes_its_target_from_the_list_file(slurm, job_tmp):
    """``--array`` with HARNESS_TARGETS: task N inserts line N of the file after the subcommand (here
    ``harness profile MODEL``, which needs no Ray: the selection is what is tested)."""
    tmp = job_tmp
    (tmp / "models.txt").write_text("resnet20\ndigits_cnn\n")
    env = {**_job_env(slurm, tmp), "HARNESS_TARGETS": str(tmp / "models.txt")}
    out = subprocess.run(["sbatch", "--parsable", "--array=1-2", "--output", str(tmp / "array-%a.out"), str(SBATCH),
                          "profile", "--input", "3x32x32"], cwd=tmp, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip().split(";")[0]
    for task, model in ((1, "resnet20"), (2, "digits_cnn")):
        job = _wait_job(env, f"{job_id}_{task}", 300)
        text = (tmp / f"array-{task}.out").read_text()
        assert job["ExitCode"] == "0:0", text[-3000:]
        assert f"harness profile {model} --input 3x32x32" in text and f"{model} at 3x32x32: params=" in text, text
