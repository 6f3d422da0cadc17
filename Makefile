# The README's two commands are `make run` and `make test`; each sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export MPLBACKEND ?= Agg

.PHONY: run test venv data browser student lessons nbgrader bench clean

run: data  ## train lesson 01's reference solution, then autograde it
	$(PY) solutions/01_mnist_dnn.py
	$(PY) -m autograder grade solutions/01_mnist_dnn.py

test: data browser  ## the whole test suite (what CI runs), the browser test included
	$(PY) -m pytest

# The browser test drives JupyterLab in Debian's chromium (never a browser download).
# Installed with apt when missing; where apt cannot, the browser test fails and says why.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; } || \
	  echo "could not install chromium: the browser test will fail (apt-get install chromium)"

student: data  ## your own copy of the lessons in work/, opened in JupyterLab
	$(PY) -m autograder.frontends.student $(ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

data: venv  ## fetch (if needed) and verify MNIST
	$(PY) -m shared.data

lessons: venv  ## regenerate lessons/ from solutions/
	$(PY) -m autograder.authoring.course lessons

nbgrader: venv  ## build the nbgrader course folder from solutions/
	$(PY) -m autograder.frontends.nbgrader.course build

bench: data browser  ## benchmarks: training vs the original, grader speed, the student session
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_notebook.py
	$(PY) benchmarks/bench_student.py
	$(PY) benchmarks/bench_grader.py

clean:
	rm -rf runs course
