# Two entry points (README "Quick start"): `make app` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA ?= sample_data
PORT ?= 8501

.PHONY: app test test-fast lint browser-deps sample-data model clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, alone: torchaudio 2.9 needs torch 2.9.x exactly (../shared/env-notes.md)
	$(PY) -m pip install -q torch==2.9.1 torchvision==0.24.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/streamlit run auditor/app.py --server.address localhost --server.port $(PORT) -- --data $(DATA)

# Chromium drives the browser end-to-end tests (Playwright with executable_path, never `playwright install`).
browser-deps:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

# The test files run on parallel workers (pytest-xdist), one per core up to four.
test: $(STAMP) browser-deps
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Regenerate the bundled sample data set and the shipped model (see sample_data/README.md, models/README.md).
sample-data: $(STAMP)
	rm -rf sample_data/clips sample_data/test
	$(PY) -m auditor sample --out sample_data --clips 240 --label-noise 0.2 --mismatch 0.1 --seed 7 --test-clips 80

clean-venv:
	rm -rf $(VENV)
