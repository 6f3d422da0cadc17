"""shared.training is lesson 01's reference fit, evaluate and accuracy: the same code (a drift
test against the solution's gaps) and code that works (real MNIST, real training)."""
import ast
import inspect
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from shared import training
from shared.data import load_mnist
from shared.history import History

SOLUTION = Path(__file__).resolve().parents[1] / "solutions" / "01_mnist_dnn.py"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


# --- drift: lesson 01's gaps, verbatim -----------------------------------------------------

def solution_regions(function_name: str) -> list[str]:
    """The dedented text of each BEGIN/END SOLUTION region inside `function_name` of lesson 01."""
    source = SOLUTION.read_text()
    lines = source.splitlines()
    function = next(node for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.FunctionDef) and node.name == function_name)
    regions, start = [], None
    for number, line in enumerate(lines, start=1):  # an END may follow the function's last line
        if line.strip() == BEGIN and function.lineno <= number <= function.end_lineno:
            start = number
        elif line.strip() == END and start is not None:
            regions.append(textwrap.dedent("\n".join(lines[start:number - 1])))
            start = None
    return regions


def statement_runs(function):
    """Every list of statements nested in `function` (its body, a loop's body, a with's...)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield block


def find_region(region: str, function) -> str | None:
    """The dedented source, comments included, of the statements of `function` whose AST is
    `region`'s; None when no run of consecutive statements matches."""
    wanted = [ast.dump(s) for s in ast.parse(region).body]
    source_lines = textwrap.dedent(inspect.getsource(function)).splitlines()
    for block in statement_runs(function):
        dumps = [ast.dump(s) for s in block]
        for i in range(len(dumps) - len(wanted) + 1):
            if dumps[i:i + len(wanted)] == wanted:
                first, last = block[i], block[i + len(wanted) - 1]
                return textwrap.dedent("\n".join(source_lines[first.lineno - 1:last.end_lineno]))
    return None


@pytest.mark.parametrize("name", ["fit", "accuracy"])
def test_lesson_01_gaps_are_in_shared_training_verbatim(name):
    regions = solution_regions(name)
    assert len(regions) == 1, f"expected one solution region in lesson 01's {name}, found " \
                              f"{len(regions)}: the drift test must be updated with the lesson"
    found = find_region(regions[0], getattr(training, name))
    assert found is not None, f"shared.training.{name} no longer holds the code of lesson 01's " \
                              f"gap:\n{regions[0]}"
    assert found == regions[0]  # comments and layout too


def test_evaluate_is_lesson_01s_line_for_line():
    source = SOLUTION.read_text()
    lesson = next(node for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.FunctionDef) and node.name == "evaluate")
    ours = ast.parse(textwrap.dedent(inspect.getsource(training.evaluate))).body[0]
    assert ast.dump(ours) == ast.dump(lesson)


def test_the_drift_test_sees_a_changed_line():
    region = solution_regions("accuracy")[0]
    changed = region.replace("correct / len(x)", "correct / len(y)")
    assert changed != region
    assert find_region(changed, training.accuracy) is None


# --- it works, on real MNIST -------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist():
    """500 training and 2,500 test images, standardised as the lessons do."""
    (x_train, y_train), (x_test, y_test) = load_mnist(normalize=False)
    x_train, x_test = x_train[:500].float() / 255, x_test[:2500].float() / 255
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train[:500], (x_test - mean) / std, y_test[:2500]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(32, 10))


def test_fit_trains_a_tiny_model(mnist, capsys):
    x_train, y_train, x_test, y_test = mnist
    model = tiny_model()
    history = training.fit(model, x_train, y_train, x_test, y_test, epochs=4, batch_size=64)
    assert len(history) == 4 and set(history.keys()) == set(history.KEYS)
    losses = history["loss"]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.5 * losses[0]
    assert history.last("val_accuracy") > 0.5  # 10 % is chance; 500 images, 4 epochs
    assert history.last("val_accuracy") == training.accuracy(model, x_test, y_test)
    assert "epoch 4/4: 100%" in capsys.readouterr().out  # tqdm, on stdout as in lesson 01


def test_fit_uses_its_learning_rate_and_schedule(mnist):
    x_train, y_train, x_test, y_test = mnist
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    history = training.fit(model, x_train, y_train, x_test, y_test, epochs=2, batch_size=100,
                           learning_rate=0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert history["loss"][0] == history["loss"][1]
    untrained_loss = history["loss"][0]
    # gamma 0: the learning rate is 0 after the first epoch, so only that epoch moves the model
    history = training.fit(model, x_train, y_train, x_test, y_test, epochs=3, batch_size=100,
                           gamma=0.0)
    assert history["loss"][0] == history["loss"][1] == history["loss"][2] < untrained_loss


def test_accuracy_and_evaluate_equal_a_hand_computation(mnist):
    x_train, y_train, x_test, y_test = mnist
    model = tiny_model()
    training.fit(model, x_train, y_train, x_test, y_test, epochs=2, batch_size=64)
    model.train()  # with dropout on, a forgotten eval() would change the answer
    model.eval()
    with torch.no_grad():
        logits = model(x_test)  # all 2,500 images in one pass
    model.train()
    hits = logits.argmax(dim=1) == y_test
    expected = hits.sum().item() / 2500
    # chunks of 1,000: two full ones and a last partial chunk of 500
    assert hits[2000:].sum().item() / 500 != hits[:2000].sum().item() / 2000
    assert training.accuracy(model, x_test, y_test, chunk_size=1000) == expected
    assert isinstance(training.accuracy(model, x_test, y_test), float)
    loss, acc = training.evaluate(model, x_test, y_test, nn.CrossEntropyLoss())
    assert acc == expected
    assert loss == pytest.approx(F.cross_entropy(logits, y_test).item(), rel=1e-5)
    assert model.training  # both left the model in the mode it was in
    model.eval()
    assert training.accuracy(model, x_test, y_test, chunk_size=700) == expected
    assert not model.training


# --- what a student meets: a bar that moves, a stop button that keeps the work ----------------

class Slow(nn.Module):
    """A tiny model that takes `seconds` per training batch, as a CNN's batch does on a CPU."""

    def __init__(self, seconds):
        super().__init__()
        self.body, self.seconds = tiny_model(), seconds

    def forward(self, x):
        if self.training:
            time.sleep(self.seconds)
        return self.body(x)


class StopAt(nn.Module):
    """A tiny model whose training forward raises KeyboardInterrupt (the ■ button) at the
    `batch`-th training batch."""

    def __init__(self, batch):
        super().__init__()
        self.body, self.batch, self.seen = tiny_model(), batch, 0

    def forward(self, x):
        if self.training:
            self.seen += 1
            if self.seen == self.batch:
                raise KeyboardInterrupt
        return self.body(x)


def test_fits_bar_moves_with_every_batch_not_only_per_epoch(mnist, capsys):
    """Lesson 02's epoch takes tens of seconds: the bar must move within it (issue 19)."""
    x_train, y_train, x_test, y_test = mnist
    training.fit(Slow(0.12), x_train, y_train, x_test, y_test, epochs=1, batch_size=100)
    out = capsys.readouterr().out
    shown = [int(n) for n in re.findall(r"\| *(\d+)/5 \[", out)]  # 500 images: 5 batches
    assert {1, 2, 3} <= set(shown) and shown[-1] == 5, out  # it moved during the epoch
    assert "epoch 1/1" in out and "batch" in out


def lesson_01_fit():
    """Lesson 01's own fit (its solution's code), with shared.training's evaluate."""
    source = SOLUTION.read_text()
    node = next(node for node in ast.parse(source).body
                if isinstance(node, ast.FunctionDef) and node.name == "fit")
    namespace = {"torch": torch, "nn": nn, "tqdm": tqdm, "sys": sys, "History": History,
                 "evaluate": training.evaluate, "EPOCHS": 2, "BATCH_SIZE": 64,
                 "LEARNING_RATE": 2e-3}
    exec(compile(ast.Module([node], []), str(SOLUTION), "exec"), namespace)
    return namespace["fit"]


@pytest.mark.parametrize("fit", [training.fit, lesson_01_fit()], ids=["shared", "lesson_01"])
def test_an_interrupted_fit_returns_the_epochs_it_finished(mnist, capsys, fit):
    x_train, y_train, x_test, y_test = mnist
    model = StopAt(batch=12)  # 8 batches of 64 per epoch: stopped in the second epoch
    history = fit(model, x_train, y_train, x_test, y_test, epochs=3, batch_size=64)
    assert isinstance(history, History) and len(history) == 1
    assert set(history.keys()) == set(History.KEYS)
    assert "interrupted: fit returns the epochs it finished (1 of 3)" in capsys.readouterr().out


KERNEL_SETUP = '''
import time
import torch
from torch import nn
from shared.training import fit

class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
        if self.training:
            time.sleep(0.3)
        return self.body(x)

torch.manual_seed(0)
x, y = torch.randn(500, 28, 28), torch.randint(0, 10, (500,))
'''


def test_the_stop_button_of_a_real_kernel_keeps_the_history():
    """Issue 19: ■ during training raised KeyboardInterrupt out of fit, `history` was never
    assigned, and the next cells failed with NameError. In a real kernel, interrupted during
    its second epoch, fit returns the first."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(SOLUTION.parents[1]))
    try:
        assert kc.execute_interactive(KERNEL_SETUP, timeout=120)["content"]["status"] == "ok"
        training = kc.execute("history = fit(Slow(), x, y, x, y, epochs=3, batch_size=100)")
        seen, deadline = "", time.monotonic() + 120
        # 5 batches of 0.3 s an epoch: stop in the second (a bar per batch, or per epoch)
        while not re.search(r"epoch 2/3|\| 1/3 \[", seen):
            assert time.monotonic() < deadline, seen
            message = kc.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") == training and \
                    message["msg_type"] == "stream":
                seen += message["content"]["text"]
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == training
        assert reply["content"]["status"] == "ok"  # no KeyboardInterrupt out of the cell
        printed = []
        kc.execute_interactive("print(len(history), history.keys())", timeout=60,
                               output_hook=lambda m: printed.append(m["content"].get("text", "")))
        assert "1 ('loss', 'accuracy', 'val_loss', 'val_accuracy')" in "".join(printed)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
