# The two commands a fresh machine needs: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv and installs the project into it first, at the versions in requirements.lock.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install lock browser datasets system demo test test-fast ui clean

# Exactly the versions in requirements.lock, each file checked against its hash, then the project
# itself on top (an editable install has no hash, so it is a second pip call; --no-build-isolation
# builds it with the locked setuptools instead of fetching an unpinned one).
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Re-resolve requirements.lock on purpose, never as a side effect of installing: after a change to
# pyproject.toml's dependencies, or to take newer releases (then run `make test` before committing
# the lock). LOCK_FLAGS= keeps the current pins where pyproject still admits them. pip-tools runs
# from a throwaway venv so that it is in neither the lock nor .venv; the pins are for this
# machine's kind (CPython 3.11, Linux x86_64), with every file's hash PyPI lists for them.
PIP_TOOLS ?= pip-tools==7.7.0
LOCK_FLAGS ?= --upgrade
lock:
	tools=$$(mktemp -d) && python3 -m venv $$tools && $$tools/bin/pip install --quiet $(PIP_TOOLS) \
	  && CUSTOM_COMPILE_COMMAND='make lock' $$tools/bin/pip-compile --quiet $(LOCK_FLAGS) --generate-hashes --extra dev --all-build-deps \
	    --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	    --output-file requirements.lock pyproject.toml; \
	  status=$$?; rm -rf $$tools; exit $$status

# Jiang Table 4-9/4-10 and Figures 4.1/4.2 at the quick profile on scikit-learn's digits
# (available offline), with ResNet-20 for ResNet-56 so that it ends within minutes on 2 CPU cores
# (the quick profile itself, ResNet-56, takes about 6): 18 Ray Tune trials recorded in
# ./mlflow.db, reports in ./reports.
demo: install
	$(VENV)/bin/harness reproduce jiang-table-4-9 --profile quick --dataset digits --set model.name=resnet20 --out reports

# Debian packages that tests and quick profiles use, installed with one apt-get call when missing and
# run as root; otherwise nothing is installed and the tests that need them skip, saying why.
# Each entry is PACKAGE:PROBE, the probe a command on PATH or a path the package installs.
#   chromium, chromium-driver   tests/test_ui.py drives the MLflow UI in a real browser
#   dataset-fashion-mnist       Fashion-MNIST's idx files (tests/test_data.py, --dataset fashion_mnist)
#   slurm-wlm, munge            a SLURM cluster in a temp folder (tests/test_slurm.py: cluster/slurm/)
#   postgresql                  a PostgreSQL MLflow store, as cluster/tracking_server.sh runs one
APT_GET ?= apt-get
FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
BROWSER_PACKAGES := chromium:chromium chromium-driver:chromedriver
DATASET_PACKAGES := dataset-fashion-mnist:$(FASHION_MNIST)
CLUSTER_PACKAGES := slurm-wlm:slurmctld munge:munged postgresql:pg_ctlcluster
define apt_ensure
	@missing=""; for entry in $(1); do pkg=$${entry%%:*}; probe=$${entry#*:}; \
	  if [ -e "$$probe" ] || command -v "$$probe" >/dev/null 2>&1; then :; else missing="$$missing $$pkg"; fi; \
	done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	  echo "installing Debian packages:$$missing"; \
	  { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $$missing >/dev/null; } \
	    || echo "could not install$$missing: the tests that need them will skip"; \
	else echo "missing Debian packages$$missing and not root (apt-get install$$missing): the tests that need them will skip"; fi
endef

browser:
	$(call apt_ensure,$(BROWSER_PACKAGES))

datasets:
	$(call apt_ensure,$(DATASET_PACKAGES))

# All of them in one apt-get call (one package-list update on a fresh machine).
system:
	$(call apt_ensure,$(BROWSER_PACKAGES) $(DATASET_PACKAGES) $(CLUSTER_PACKAGES))

test: install system
	$(PY) -m pytest -q

# The working loop: everything not marked slow (no Ray or MLflow end-to-end runs).
test-fast: install
	$(PY) -m pytest -q -m "not slow"

ui: install
	$(VENV)/bin/harness ui

clean:
	rm -rf reports mlflow.db
