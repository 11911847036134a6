#!/usr/bin/env bash
# Runs on the head node (head_start_ray_commands): the cluster's MLflow tracking server.
#   backend store  PostgreSQL on the head (local socket, peer authentication: no password anywhere)
#   artifacts      $HARNESS_ARTIFACTS_URI (s3://bucket/prefix or gs://bucket/prefix, reached with the
#                  head's instance role / service account), proxied by the server so workers need no
#                  cloud credentials of their own
#   bound to       the head's cluster-network address only (not every interface), port 5000
# Trials find it through the entrypoint, which passes --tracking-uri http://<head address>:5000.
set -euo pipefail
HEAD_IP="${RAY_HEAD_IP:-$(hostname -I | awk '{print $1}')}"
PORT="${HARNESS_MLFLOW_PORT:-5000}"
if ! command -v psql >/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq postgresql
fi
sudo systemctl start postgresql || sudo service postgresql start
sudo -u postgres psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='$USER'" | grep -q 1 \
  || sudo -u postgres createuser "$USER"
sudo -u postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname='mlflow'" | grep -q 1 \
  || sudo -u postgres createdb -O "$USER" mlflow
python3 -m pip install --quiet psycopg2-binary
ARTIFACTS="${HARNESS_ARTIFACTS_URI:-$HOME/mlflow-artifacts}"
pkill -f "mlflow server.*--port $PORT" || true
nohup python3 -m mlflow server \
  --backend-store-uri "postgresql:///mlflow" \
  --artifacts-destination "$ARTIFACTS" \
  --host "$HEAD_IP" --port "$PORT" --workers 4 \
  > ~/mlflow-server.log 2>&1 &
echo "MLflow tracking server: http://$HEAD_IP:$PORT (log: ~/mlflow-server.log)"
