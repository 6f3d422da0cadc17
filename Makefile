# The README's two commands are `make run` and `make test`; each sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export MPLBACKEND ?= Agg

.PHONY: run test venv data lessons nbgrader bench clean

run: data  ## train lesson 01's reference solution, then autograde it
	$(PY) solutions/01_mnist_dnn.py
	$(PY) -m autograder grade solutions/01_mnist_dnn.py

test: data  ## the whole test suite (what CI runs)
	$(PY) -m pytest

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

data: venv  ## fetch (if needed) and verify MNIST
	$(PY) -m shared.data

lessons: venv  ## regenerate lessons/ from solutions/
	$(PY) -m autograder.course lessons

nbgrader: venv  ## build the nbgrader course folder from solutions/
	$(PY) -m autograder.nbcourse build

bench: data  ## benchmarks: training vs the original, grader speed
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_notebook.py
	$(PY) benchmarks/bench_grader.py

clean:
	rm -rf runs course
