# Two commands do all the set-up on a fresh machine with python3:
#   make demo   the main job on the embedded default (SynthFaces)
#   make test   the fast test tier
# The virtual environment is (re)installed only when pyproject.toml changes.

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test bench

demo: $(VENV)/.installed
	$(VENV)/bin/augment run pipelines/demo.yaml

test: $(VENV)/.installed-test
	$(PY) -m pytest -m "not slow" -q

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $(VENV)/.installed $@
