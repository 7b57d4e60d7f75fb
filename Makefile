# neuralannot — set-up, demo and tests.
#
#   make demo   set everything up (CPU) and run the end-to-end demo on the embedded default
#   make test   set everything up (CPU) and run the default test suite
#
# The set-up installs the CPU build of PyTorch first (TORCH_SPEC), because a plain `torch`
# requirement pulls a multi-GB CUDA build. GPU users: `make setup TORCH_SPEC=` after installing the
# CUDA build of torch of their choice into the same venv, or install with pip directly (README).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.neuralannot-installed
DEMO_OUT ?= demo_out

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh $(DEMO_OUT)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(DEMO_OUT) *.egg-info
