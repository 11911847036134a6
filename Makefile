# The two commands a fresh machine needs: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv and installs the project into it first (torch and torchvision pinned together).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser demo test ui clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Jiang Table 4-9/4-10 and Figures 4.1/4.2 at the quick profile on scikit-learn's digits
# (available offline), with ResNet-20 for ResNet-56 so that it ends within minutes on 2 CPU cores
# (the quick profile itself, ResNet-56, takes about 6): 18 Ray Tune trials recorded in
# ./mlflow.db, reports in ./reports.
demo: install
	$(VENV)/bin/harness reproduce jiang-table-4-9 --profile quick --dataset digits --set model.name=resnet20 --out reports

# Debian's chromium and chromedriver for tests/test_ui.py (the MLflow UI in a real browser):
# installed once with apt-get when missing and run as root; otherwise that test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	    || echo "could not install chromium/chromium-driver: tests/test_ui.py will skip"; \
	else echo "chromium/chromedriver missing and not root: tests/test_ui.py will skip (apt-get install chromium chromium-driver)"; fi

test: install browser
	$(PY) -m pytest -q

ui: install
	$(VENV)/bin/harness ui

clean:
	rm -rf reports mlflow.db
