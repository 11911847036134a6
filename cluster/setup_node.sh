#!/usr/bin/env bash
# Runs on every node (setup_commands): install the project that `file_mounts` copied to ~/harness,
# and stage the datasets to the shared path that every trial reads ($HARNESS_DATA).
# No credentials here: cloud access comes from the node's instance role / service account.
set -euo pipefail
cd ~/harness
python3 -m pip install --quiet --upgrade pip
# the versions the suite passed with, each file checked against its hash (README "A fresh machine"),
# then the project itself on top
python3 -m pip install --quiet --require-hashes --no-deps -r requirements.lock
python3 -m pip install --quiet --no-deps --no-build-isolation -e .
export HARNESS_DATA="${HARNESS_DATA:-/data/harness}"
sudo mkdir -p "$HARNESS_DATA" && sudo chown "$(id -u):$(id -g)" "$HARNESS_DATA"
grep -q HARNESS_DATA ~/.bashrc || echo "export HARNESS_DATA=$HARNESS_DATA" >> ~/.bashrc
# HARNESS_DATASETS_URI (s3://..., gs://..., or a path on a shared filesystem) holds the datasets in
# their standard layouts (cifar-10-batches-py/, imagenet/train/..., see README "Datasets").
case "${HARNESS_DATASETS_URI:-}" in
  s3://*) aws s3 sync --only-show-errors "$HARNESS_DATASETS_URI" "$HARNESS_DATA" ;;
  gs://*) gsutil -m -q rsync -r "$HARNESS_DATASETS_URI" "$HARNESS_DATA" ;;
  "") echo "HARNESS_DATASETS_URI unset: trials read what is already under $HARNESS_DATA" ;;
  *) rsync -a "$HARNESS_DATASETS_URI/" "$HARNESS_DATA/" ;;
esac
