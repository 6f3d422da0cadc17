"""Loading a submission keeps definitions, drops top-level work and never runs anything."""
import json

import nbformat
import pytest

from autograder.engine.submission import SubmissionError, load

SCRIPT = '''\
# %% [markdown]
# Title

# %% tags=["parameters"]
EPOCHS = 3
rate = 0.5

# %%
import torch
from torch import nn
DEVICE = torch.device("cpu")
device = pick_device()
model = nn.Linear(2, 2)
print("top-level work")


@torch.no_grad()
def predict(x):
    return x


class Net(nn.Module):
    pass


try:
    import seaborn
except ImportError:
    seaborn = None

if __name__ == "__main__":
    predict(1)
'''


def kept(sub):
    return [s.source.splitlines()[0] for s in sub.statements]


def test_keeps_definitions_constants_and_imports(tmp_path):
    path = tmp_path / "sub.py"
    path.write_text(SCRIPT)
    sub = load(path)
    assert kept(sub) == ["EPOCHS = 3", "rate = 0.5", "import torch", "from torch import nn",
                         'DEVICE = torch.device("cpu")', "device = pick_device()",
                         "@torch.no_grad()", "class Net(nn.Module):", "try:"]
    assert sub.defined() >= {"EPOCHS", "rate", "torch", "nn", "DEVICE", "device", "predict", "Net"}
    assert sub.dropped == {"model": 13}
    assert not sub.problems


def test_line_numbers_and_cells_match_the_file(tmp_path):
    path = tmp_path / "sub.py"
    path.write_text(SCRIPT)
    sub = load(path)
    decorated = [s for s in sub.statements if "predict" in s.names][0]
    assert decorated.lineno == 17 and decorated.source.endswith("return x")
    assert sub.where(17) == "line 17 (cell 3, line 9)"
    assert sub.where(5) == "line 5 (cell 2, line 1)"


def test_syntax_error_names_cell_and_line_and_spares_other_cells(tmp_path):
    path = tmp_path / "sub.py"
    path.write_text("# %%\nimport torch\n\n# %%\ndef f(:\n    pass\n\n# %%\ndef g():\n    pass\n")
    sub = load(path)
    assert sub.problems == ["syntax error at line 5 (cell 2, line 1): invalid syntax — this cell "
                            "was skipped, so nothing it defines can be graded"]
    assert sub.defined() == {"torch", "g"}


def test_notebook_cells_are_numbered_as_in_jupyter(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson"),
                nbformat.v4.new_code_cell("%matplotlib inline\nimport torch"),
                nbformat.v4.new_code_cell("def f(x):\n    return x +\n")]
    path = tmp_path / "sub.ipynb"
    nbformat.write(nb, path)
    sub = load(path)
    assert sub.defined() == {"torch"}
    assert sub.problems[0].startswith("syntax error at cell 3, line 2")


def test_unreadable_notebook_is_unreadable_not_a_crash(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{ not json")
    sub = load(path)
    assert not sub.statements and sub.unreadable.startswith("could not read broken.ipynb")


def test_grading_an_unreadable_file_is_not_a_zero_but_says_why(tmp_path):
    """A truncated notebook used to be graded: every check failed, score 0, no error: an honest
    zero to every front end. It is not graded at all, and the error says why."""
    from autograder.engine.grading import grade

    path = tmp_path / "cut.ipynb"
    path.write_text('{"cells": [{"cell_type": "code", "source": "import torch')
    with pytest.raises(SubmissionError, match="could not read cut.ipynb: JSONDecodeError"):
        grade(path, "01_mnist_dnn")


@pytest.mark.parametrize("name", ["missing.py", "notes.txt"])
def test_missing_or_unsupported_files_are_refused(tmp_path, name):
    if name.endswith(".txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(SubmissionError):
        load(tmp_path / name)


def test_a_folder_is_refused_with_a_pointer_to_batch(tmp_path):
    with pytest.raises(SubmissionError, match="is a folder.*autograder batch"):
        load(tmp_path)


def test_loading_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "sub.py"
    path.write_text(f"open({str(marker)!r}, 'w')\nX = 1\n")
    load(path)
    assert not marker.exists()


def _notebook(cells, path):
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    return path


def test_a_notebook_over_the_cell_cap_is_refused_before_parsing(tmp_path):
    from autograder.engine.submission import MAX_CELLS

    cell = {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [],
            "execution_count": None}
    sub = load(_notebook([cell] * 100_000, tmp_path / "many.ipynb"))
    assert not sub.statements and f"{MAX_CELLS} cells" in sub.unreadable


def test_a_file_over_the_size_cap_is_not_read(tmp_path, monkeypatch):
    import autograder.engine.submission as submission

    monkeypatch.setattr(submission, "MAX_BYTES", 1000)
    cell = {"cell_type": "code", "source": "X = 1", "metadata": {}, "execution_count": None,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "x" * 5000}]}
    sub = load(_notebook([cell], tmp_path / "big.ipynb"))
    assert not sub.statements and "clear the outputs" in sub.unreadable


def test_invalid_json_and_hostile_cells_are_problems_not_crashes(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    assert "JSONDecodeError" in load(broken).unreadable
    deep = tmp_path / "deep.py"
    deep.write_text("X = 1\n# %%\nY = " + "-" * 200_000 + "1\n# %%\nZ = 2\n")
    sub = load(deep)
    assert sub.defined() == {"X", "Z"} and "could not parse this cell" in sub.problems[0]


def test_parsing_is_bounded_outside_the_graders_own_process(tmp_path):
    """3 MB of bare constants took 2.8 GB to parse in the grader's own process (Python's ast),
    enough to take down a batch or nbgrader: parsing happens in a child of bounded memory and
    CPU, and the cell it could not parse is skipped and named."""
    import resource

    path = tmp_path / "constants.py"
    path.write_text("import torch\n# %%\n" + "0\n" * 1_500_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sub = load(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"the grader's own process grew by {grown_mb:.0f} MB"
    assert sub.defined() == {"torch"}
    assert "could not parse this cell (MemoryError" in sub.problems[0]


def test_a_notebook_is_read_as_jupytext_writes_it(tmp_path):
    """Magics and shell lines are comments, markdown is skipped, cells keep their numbers."""
    path = _notebook([
        {"cell_type": "markdown", "source": "# Title\nclass NotCode: pass", "metadata": {}},
        {"cell_type": "code", "source": ["%matplotlib inline\n", "!pip install x\n",
                                         "import torch\n"], "metadata": {}, "outputs": [],
         "execution_count": 1},
        {"cell_type": "code", "source": "X = 1\ny = torch.zeros(3)", "metadata": {},
         "outputs": [], "execution_count": 2}], tmp_path / "nb.ipynb")
    sub = load(path)
    assert not sub.problems and not sub.unreadable
    assert sub.defined() == {"torch", "X"}
    assert sub.where(sub.dropped["y"]) == "cell 3, line 2"


def test_an_old_notebook_format_is_unreadable_with_advice(tmp_path):
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps({"worksheets": [], "cells": [], "nbformat": 3}))
    assert "open it in a recent Jupyter and save it again" in load(path).unreadable


def test_a_percent_or_bang_that_continues_an_expression_is_code_not_a_magic(tmp_path):
    """`    % self.width)` continues the line above: commenting it out (as a %magic) broke a
    correct notebook's cell ("syntax error ... skipped") where its .py graded fine."""
    code = ('import torch\nX = ("%d units"\n     % 3)\nY = (1\n     != 2)\n'
            '%matplotlib inline\nZ = 1\n')
    path = _notebook([{"cell_type": "code", "source": code, "metadata": {}, "outputs": [],
                       "execution_count": 1}], tmp_path / "nb.ipynb")
    sub = load(path)
    assert not sub.problems and sub.defined() == {"torch", "X", "Y", "Z"}
    valid = _notebook([{"cell_type": "code", "source": 'X = ("%d units"\n     % 3)\n',
                        "metadata": {}, "outputs": [], "execution_count": 1}],
                      tmp_path / "valid.ipynb")
    assert load(valid).defined() == {"X"}


def test_a_cell_magic_does_not_start_a_new_cell(tmp_path):
    """`%%time` becomes `# %%time`, which is no cell marker: messages name the right cell."""
    cells = [{"cell_type": "markdown", "source": "%% not a marker", "metadata": {}},
             {"cell_type": "code", "source": "%%time\nimport torch", "metadata": {},
              "outputs": [], "execution_count": 1},
             {"cell_type": "code", "source": "X = (", "metadata": {}, "outputs": [],
              "execution_count": 2}]
    sub = load(_notebook(cells, tmp_path / "nb.ipynb"))
    assert sub.defined() == {"torch"}
    assert sub.problems[0].startswith("syntax error at cell 3")


def test_many_statements_in_one_cell_cost_linear_time(tmp_path):
    """Each statement's source was cut with ast.get_source_segment, which splits the whole
    cell again: 120 KB without cell markers took 4 s of CPU, near the parser's 20 s limit."""
    path = tmp_path / "long.py"
    path.write_text("".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(20_000)))
    sub = load(path)  # quadratic, 600 KB took over the parser's 20 s: "unreadable"
    assert len(sub.statements) == 20_000 and not sub.unreadable
    assert sub.statements[-1].source == "def f19999(x):\n    return x + 19999"
