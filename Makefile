# Two commands do all the set-up on a fresh machine with python3:
#   make demo   the main job on the embedded default (SynthFaces)
#   make test   the fast test tier
# The virtual environment is (re)installed only when pyproject.toml changes.

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test bench

# Prints the total wall time, set-up included.
demo:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory $(VENV)/.installed && \
	$(VENV)/bin/augment run pipelines/demo.yaml && \
	echo "make demo: done in $$(( $$(date +%s) - start )) s (set-up included); report: runs/demo/report.html"

test: $(VENV)/.installed-test
	$(PY) -m pytest -m "not slow" -q

# Speed and memory figures -> benchmarks/results.json and benchmarks/RESULTS.md
# (under 20 minutes on a 2-core CPU).
bench: $(VENV)/.installed-test
	$(PY) -m benchmarks

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[judges]'
	touch $@

$(VENV)/.installed-test: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,judges]'
	touch $(VENV)/.installed $@
