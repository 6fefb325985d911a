# The two commands of the README quick start:
#   make demo   set up, then run the pipeline on the embedded synthetic data
#   make test   set up, then run the unit tests and the notebooks (quick config)
# and, for the rendered tutorial:
#   make docs     execute the six notebooks with the demo config and build the site in site/
#   make figures  write the README's gallery into docs/figures/ from a demo run
# Everything lives in .venv; nothing is installed system-wide, and no target needs root.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= configs/demo.config

.PHONY: setup demo test docs figures lint

# One stamp per set of extras, so `make demo` installs only what the demo and notebooks need.
$(VENV)/.installed-%: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is needed; set PYTHON=python3.x")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$*]"
	touch $@

setup: $(VENV)/.installed-notebooks

DEMO_RUN := runs/demo/models/state.json

# A second `make demo` continues (or, when finished, keeps) the run instead of failing.
demo: $(VENV)/.installed-notebooks
	$(PY) -m hippo_utils derive $(CONFIG) --synthetic-if-missing
	$(PY) -m hippo_utils train $(CONFIG) $$(test -f $(DEMO_RUN) && echo --resume)

# The browser tests use a Chromium when one is found (the system's, HIPPO_CHROMIUM, or
# `.venv/bin/playwright install chromium`) and are skipped with the reason otherwise.
test: $(VENV)/.installed-notebooks,test,docs
	$(PY) -m pytest --nbval-lax tests notebooks

docs: $(VENV)/.installed-notebooks,docs
	$(PY) docs/build_docs.py --config $(CONFIG) --site site

figures: $(VENV)/.installed-notebooks
	$(PY) docs/make_figures.py --config $(CONFIG) --out docs/figures

lint: $(VENV)/.installed-notebooks,dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
