# The two commands of the README quick start:
#   make demo   set up, then run the pipeline on the embedded synthetic data
#   make test   set up, then run the unit tests and the notebooks (quick config)
# Everything lives in .venv; nothing is installed system-wide.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is needed; set PYTHON=python3.x")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[notebooks,test]"
	touch $(STAMP)

DEMO_RUN := runs/demo/models/state.json

# A second `make demo` continues (or, when finished, keeps) the run instead of failing.
demo: setup
	$(PY) -m hippo_utils derive configs/demo.config --synthetic-if-missing
	$(PY) -m hippo_utils train configs/demo.config $$(test -f $(DEMO_RUN) && echo --resume)

# The notebook 06 browser test drives Debian's Chromium (no browser download).
browser:
	@test -n "$$HIPPO_CHROMIUM" || command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "The browser test needs Chromium: sudo apt-get install chromium (or set HIPPO_CHROMIUM)"; exit 1; fi; }

test: setup browser
	$(PY) -m pytest --nbval-lax tests notebooks

lint: setup
	$(PY) -m ruff check hippo_utils tests notebooks benchmarks
