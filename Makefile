# The README's two commands are `make run` and `make test`; each sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export MPLBACKEND ?= Agg

.PHONY: run test venv test-tools data browser student lessons nbgrader bench clean

# Every lesson of the registry (autograder/lessons/__init__.py), or one: make run LESSON=02_mnist_cnn
LESSON ?= $(shell $(PY) -c "from autograder import lessons; print(*lessons.ids())" 2>/dev/null)

run: data  ## train each lesson's reference solution, then autograde it (LESSON=<id>: one)
	@test -n "$(LESSON)" || { echo "no lesson found: is the venv set up?"; exit 2; }
	@for lesson in $(LESSON); do \
	  test -f solutions/$$lesson.py || { echo "no lesson $$lesson: solutions/$$lesson.py is missing"; exit 2; }; \
	  echo "== $$lesson: training the reference solution"; \
	  $(PY) solutions/$$lesson.py || exit $$?; \
	  echo "== $$lesson: autograding it"; \
	  $(PY) -m autograder grade solutions/$$lesson.py || exit $$?; \
	done

test: test-tools data browser  ## the whole test suite (what CI runs), the browser test included
	$(PY) -m pytest

# The browser test drives JupyterLab in Debian's chromium (never a browser download).
# Installed with apt when missing; where apt cannot, the browser test fails and says why.
# apt's output goes to $(VENV)/apt.log (its last lines show when it fails).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || \
	  { echo "installing Debian's chromium for the browser test (apt's output: $(VENV)/apt.log) ..." && \
	    mkdir -p $(VENV) && { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } > $(VENV)/apt.log 2>&1; } || \
	  { tail -n 5 $(VENV)/apt.log; echo "could not install chromium: the browser test will fail (apt-get install chromium)"; }

student: data  ## your own copy of the lessons in work/, opened in JupyterLab
	$(PY) -m autograder.frontends.student $(ARGS)

# The venv: torch (a CPU build where there is no NVIDIA GPU; TORCH=cpu|pypi overrides), then the
# course, quietly (pip's full output: $(VENV)/pip.log). test-tools: the same with the [test]
# extra, in one pip run when the venv is new (it then stands for `venv` too).
venv: $(VENV)/.installed
test-tools: $(VENV)/.installed-test

define setup_venv
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) tools/setup_venv.py $(1)
endef

$(VENV)/.installed: pyproject.toml tools/setup_venv.py
	$(call setup_venv)
	@touch $@

$(VENV)/.installed-test: pyproject.toml tools/setup_venv.py
	$(call setup_venv,--extras test)
	@touch $(VENV)/.installed $@

data: venv  ## fetch (if needed) and verify MNIST
	$(PY) -m shared.data

lessons: venv  ## regenerate lessons/ from solutions/
	$(PY) -m autograder.authoring.course lessons

nbgrader: venv  ## build the nbgrader course folder from solutions/
	$(PY) -m autograder course build

bench: test-tools data browser  ## benchmarks: training vs the original, grader speed, the student session
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_notebook.py
	$(PY) benchmarks/bench_cnn.py
	$(PY) benchmarks/bench_student.py
	$(PY) benchmarks/bench_grader.py
	$(PY) benchmarks/bench_grader_cnn.py

clean:
	rm -rf runs course
