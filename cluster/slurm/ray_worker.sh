#!/usr/bin/env bash
# One Ray worker node of a harness.sbatch job, run by its `srun` step on a node other than the head:
#   ray_worker.sh HEAD:RAY_PORT CPUS TEMP_DIR [MLFLOW_PORT HEAD:SERVER_PORT]
# harness.sbatch starts it once the head answers. With the MLflow ports, the store's forwarder runs
# here too, so that trials on this node reach the job's server at http://127.0.0.1:MLFLOW_PORT.
# SIGTERM (srun passes on the one harness.sbatch sends at exit) stops both, by PID.
set -euo pipefail
address=$1 cpus=$2 temp_dir=$3 port=${4:-} server=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
python=$(command -v python)  # the job's venv: harness.sbatch puts it first on PATH
mkdir -p "$temp_dir"
forwarder="" ray_group=""
stop() {
  [ -z "$forwarder" ] || kill -TERM "$forwarder" 2>/dev/null || true
  if [ -n "$ray_group" ]; then  # Ray's processes may outlast SIGTERM for many seconds (`ray stop` waits 16)
    kill -TERM -- "-$ray_group" 2>/dev/null || true
    for ((t = 0; t < 20; t++)); do kill -0 -- "-$ray_group" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$ray_group" 2>/dev/null || true
  fi
  rm -rf "$temp_dir"
}
trap 'exit 143' TERM INT
trap stop EXIT

# A node on the head's own machine (several slurmd on one host, as in tests/test_slurm.py) shares
# the head's forwarder: the port is taken by it.
if [ -n "$port" ] && [[ " $(hostname -I) 127.0.0.1 " != *" ${server%:*} "* ]]; then
  "$python" "$here/forward.py" "$port" "$server" &
  forwarder=$!
  for ((t = 0; ; t++)); do
    "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "http://127.0.0.1:$port/health" 2>/dev/null && break
    kill -0 "$forwarder" 2>/dev/null || { echo "ray_worker.sh: the store's forwarder exited" >&2; exit 1; }
    [ "$t" -lt 240 ] || { echo "ray_worker.sh: no MLflow server behind 127.0.0.1:$port in 120 s" >&2; exit 1; }
    sleep 0.5
  done
fi
# its own session (setsid does not fork here: a background child is no group leader), stopped by group
setsid ray start --address "$address" --block --temp-dir "$temp_dir" --num-cpus "$cpus" \
  --num-gpus "${HARNESS_GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-0}}" --disable-usage-stats &
ray_group=$!
wait "$ray_group"
