# The two commands a fresh machine needs: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv and installs the project into it first (torch and torchvision pinned together).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test ui clean

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

test: install
	$(PY) -m pytest -q

ui: install
	$(VENV)/bin/harness ui

clean:
	rm -rf reports mlflow.db
