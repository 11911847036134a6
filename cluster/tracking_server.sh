#!/usr/bin/env bash
# Runs on the head node (head_start_ray_commands), or by hand: the cluster's MLflow tracking server.
#   backend store  PostgreSQL on this machine, reached over a unix socket only (peer authentication: no
#                  password anywhere, no TCP port): Debian's cluster (pg_ctlcluster) as root or through
#                  sudo; otherwise, as an ordinary user (a container, a SLURM job), a cluster of that user's
#                  own in $HARNESS_PG_DATA (initdb + pg_ctl). No systemd needed either way.
#   artifacts      $HARNESS_ARTIFACTS_URI (s3://bucket/prefix or gs://bucket/prefix, reached with the
#                  head's instance role / service account), proxied by the server so workers need no
#                  cloud credentials of their own
#   bound to       one address only (not every interface): $HARNESS_MLFLOW_HOST, else $RAY_HEAD_IP, else
#                  the first address `hostname -I` prints; port $HARNESS_MLFLOW_PORT (5000)
#   stopped by     its PID file ($HARNESS_MLFLOW_PIDFILE, ~/mlflow-server.pid), which holds the server's
#                  process group: kill -TERM -- -"$(cat ~/mlflow-server.pid)". Running this script again
#                  replaces the server it started before.
# Other settings: HARNESS_PG_CLUSTER (VERSION/NAME; default the newest version's main, created if missing),
# PGPORT (PostgreSQL's port: the Debian cluster's, checked, or the user's own cluster's, default 5432),
# HARNESS_PG_DATA (default ~/harness-pgdata when there is neither root nor sudo), HARNESS_PG_SOCKET (default
# $HARNESS_PG_DATA/socket), HARNESS_MLFLOW_LOG (~/mlflow-server.log), HARNESS_MLFLOW_WORKERS (4),
# HARNESS_MLFLOW_WAIT_S (120: how long to wait for /health).
# Trials find it through the entrypoint, which passes --tracking-uri http://<head address>:5000.
# It prints the URL once /health answers, and exits non-zero with one line on stderr when anything fails.
set -Eeuo pipefail
fail() { echo "tracking_server.sh: $*" >&2; exit 1; }
trap 'rc=$?; echo "tracking_server.sh: line $LINENO: \`$BASH_COMMAND\` failed (exit $rc)" >&2; exit $rc' ERR

ME="$(id -un)"  # $USER is unset in containers and cron-like launchers
HEAD_IP="${HARNESS_MLFLOW_HOST:-${RAY_HEAD_IP:-$(hostname -I 2>/dev/null | awk '{print $1}')}}"
[ -n "$HEAD_IP" ] || fail "no address to bind: set HARNESS_MLFLOW_HOST (hostname -I printed none)"
PORT="${HARNESS_MLFLOW_PORT:-5000}"
PIDFILE="${HARNESS_MLFLOW_PIDFILE:-$HOME/mlflow-server.pid}"
LOG="${HARNESS_MLFLOW_LOG:-$HOME/mlflow-server.log}"
ARTIFACTS="${HARNESS_ARTIFACTS_URI:-$HOME/mlflow-artifacts}"
WORKERS="${HARNESS_MLFLOW_WORKERS:-4}"
WAIT_S="${HARNESS_MLFLOW_WAIT_S:-120}"
# Job execution (GenAI scorers, trace rollups) starts seven huey consumers next to the server; sweeps use
# none of them, and on a small head they compete with the driver for its cores.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

python3 -c 'import mlflow, psycopg2' 2>/dev/null \
  || fail "$(command -v python3 || echo python3) cannot import mlflow and psycopg2: install the project (pip install -e .) into the python3 on PATH"

PRIVILEGED=yes
if [ "$(id -u)" = 0 ]; then
  AS_ROOT=() AS_PG=(runuser -u postgres --)  # sudo is often absent where root is the only user
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  AS_ROOT=(sudo -n) AS_PG=(sudo -n -u postgres)
else
  PRIVILEGED=no
fi

pg_bin() {  # Debian keeps the server programs off PATH, per major version
  command -v "$1" 2>/dev/null || ls -1d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}

if [ -n "${HARNESS_PG_DATA:-}" ] || [ "$PRIVILEGED" = no ]; then
  # An ordinary user's own cluster: postgres refuses to run as root, and needs nothing else.
  [ "$(id -u)" != 0 ] || fail "HARNESS_PG_DATA is for an ordinary user (postgres refuses to run as root); as root, unset it to use Debian's cluster"
  DATA="${HARNESS_PG_DATA:-$HOME/harness-pgdata}"
  SOCKDIR="${HARNESS_PG_SOCKET:-$DATA/socket}"
  PGPORT="${PGPORT:-5432}"
  INITDB="$(pg_bin initdb)" PG_CTL="$(pg_bin pg_ctl)"
  [ -n "$INITDB" ] && [ -n "$PG_CTL" ] \
    || fail "no initdb/pg_ctl on PATH or under /usr/lib/postgresql: install PostgreSQL's server (apt-get install postgresql)"
  [ $(( ${#SOCKDIR} + 16 )) -le 107 ] || fail "socket folder $SOCKDIR is too long for a unix socket path: set HARNESS_PG_SOCKET to a shorter one"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    "$INITDB" -D "$DATA" --auth-local=peer --auth-host=reject -E UTF8 --no-locale >"$DATA.initdb.log" 2>&1 \
      || fail "initdb -D $DATA failed: see $DATA.initdb.log"
    echo "include_if_exists = 'harness.conf'" >>"$DATA/postgresql.conf"
  fi
  mkdir -p "$SOCKDIR"
  # Rewritten on every start, so the socket folder and port follow this run's settings.
  printf "listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\n" "${SOCKDIR//\'/\'\'}" "$PGPORT" \
    >"$DATA/harness.conf"
  if ! "$PG_CTL" -D "$DATA" status >/dev/null 2>&1; then
    "$PG_CTL" -D "$DATA" -l "$DATA/postgresql.log" -w -t 60 start >/dev/null \
      || fail "PostgreSQL in $DATA did not start: see $DATA/postgresql.log"
  fi
  PSQL=(psql -h "$SOCKDIR" -p "$PGPORT" -d postgres)
else
  if [ -n "${HARNESS_PG_CLUSTER:-}" ] && ! [[ "$HARNESS_PG_CLUSTER" =~ ^[0-9.]+/[^/]+$ ]]; then
    fail "HARNESS_PG_CLUSTER=$HARNESS_PG_CLUSTER is not VERSION/NAME (e.g. 15/main)"
  fi
  if ! command -v pg_ctlcluster >/dev/null; then
    command -v apt-get >/dev/null || fail "no pg_ctlcluster (Debian's postgresql-common) and no apt-get: set HARNESS_PG_DATA to run a cluster of your own"
    "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  CLUSTER="${HARNESS_PG_CLUSTER:-}"
  if [ -z "$CLUSTER" ]; then
    CLUSTER="$(pg_lsclusters -h | awk '$2 == "main" {print $1 "/" $2}' | sort -V | tail -1)"
    [ -n "$CLUSTER" ] || CLUSTER="$(ls -1 /usr/lib/postgresql | sort -V | tail -1)/main"
  fi
  VERSION="${CLUSTER%%/*}" NAME="${CLUSTER#*/}"
  if [ -z "$(pg_lsclusters -h "$VERSION" "$NAME" 2>/dev/null)" ]; then
    "${AS_ROOT[@]}" pg_createcluster "$VERSION" "$NAME" ${PGPORT:+-p "$PGPORT"} >/dev/null \
      || fail "pg_createcluster $VERSION $NAME failed"
  fi
  CLUSTER_PORT="$(pg_lsclusters -h "$VERSION" "$NAME" | awk '{print $3}')"
  [ -z "${PGPORT:-}" ] || [ "$PGPORT" = "$CLUSTER_PORT" ] \
    || fail "PGPORT=$PGPORT but cluster $CLUSTER listens on port $CLUSTER_PORT"
  PGPORT="$CLUSTER_PORT"
  SOCKDIR="$(pg_conftool -s "$VERSION" "$NAME" show unix_socket_directories 2>/dev/null | cut -d, -f1 || true)"
  SOCKDIR="${SOCKDIR:-/var/run/postgresql}"
  if ! pg_ctlcluster "$VERSION" "$NAME" status >/dev/null 2>&1; then
    "${AS_ROOT[@]}" pg_ctlcluster "$VERSION" "$NAME" start \
      || fail "pg_ctlcluster $VERSION $NAME start failed: see /var/log/postgresql/postgresql-$VERSION-$NAME.log"
  fi
  PSQL=("${AS_PG[@]}" psql -h "$SOCKDIR" -p "$PGPORT" -d postgres)
fi

# Idempotent: a second start finds the role and the database and leaves them as they are.
"${PSQL[@]}" -q -X -v ON_ERROR_STOP=1 -v role="$ME" >/dev/null <<'SQL' || fail "creating the role $ME and the database mlflow failed (see above)"
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE mlflow OWNER %I ENCODING ''UTF8'' LC_COLLATE ''C'' LC_CTYPE ''C'' TEMPLATE template0', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow') \gexec
SQL
# The driver is named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (3), which is not installed.
BACKEND="postgresql+psycopg2:///mlflow?host=$SOCKDIR&port=$PGPORT"

# The server this script started before, by its process group: uvicorn's workers can outlive the `mlflow
# server` process itself and keep the port. A group without mlflow in it is someone else's (a reused id).
if [ -s "$PIDFILE" ]; then
  OLD="$(cat "$PIDFILE")"
  if ps -eo pgid=,args= | awk -v g="$OLD" '$1 == g && /mlflow/ {found = 1} END {exit !found}'; then
    kill -TERM -- "-$OLD" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 -- "-$OLD" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$OLD" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
fi

# setsid: the server and its uvicorn workers form one process group, which the PID file names.
setsid python3 -m mlflow server \
  --backend-store-uri "$BACKEND" \
  --artifacts-destination "$ARTIFACTS" \
  --host "$HEAD_IP" --port "$PORT" --workers "$WORKERS" \
  >"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"

URL="http://$HEAD_IP:$PORT"
deadline=$(( SECONDS + WAIT_S ))
until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$URL/health" 2>/dev/null; do
  if ! kill -0 "$PID" 2>/dev/null; then
    rm -f "$PIDFILE"
    # uvicorn's last words are its shutdown; the error (a port in use, a database refused) comes before them
    why="$(grep -iE 'error|exception' "$LOG" | tail -1 || true)"
    fail "mlflow server exited before $URL/health answered: ${why:-$(tail -1 "$LOG")} (log: $LOG)"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    kill -TERM -- "-$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    fail "$URL/health did not answer within $WAIT_S s; stopped the server (log: $LOG)"
  fi
  sleep 0.5
done
echo "MLflow tracking server: $URL (backend $BACKEND, log $LOG, PID file $PIDFILE)"
