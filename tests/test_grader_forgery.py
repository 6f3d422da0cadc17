"""Evidence, not claims: what a submission that rewrites the grader from inside its own process
can still earn. Each forging class of issue 9 is tried on the unfilled lesson (or a weak model)
and must earn no point it does not deserve; only checks whose evidence is, by nature, an
observation inside the student's process (fit's returned history: 1 point) may follow a
forged claim, and README says so. accuracy's four points need values computed on cases built
from a secret the grader draws per grading: values prepared in advance earn nothing.

The forger knows the grader's source. Its payload forges every probe's answer, in the old and
the new formats: perfect model data, a perfect fit log, accuracy values computed with the
grader's own reference on the cases of a secret it picked itself, and a hidden "evaluation"
with the right labels.
"""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn

from autograder.engine.grading import grade, grade_namespace
from autograder.lessons.common import graphs
from submissions.catalogue import render

REPO = Path(__file__).resolve().parent.parent
UNFILLED = REPO / "lessons" / "01_mnist_dnn.py"

# A function body (indented by 4) that builds forged outcomes for every probe.
FORGE = '''
    import sys, torch
    from autograder.lessons.common import fixtures as fx
    ok = lambda value: {"ok": True, "value": value}
    def model(ns, **_):
        x, y = fx.train_slice(0, fx.INIT_SAMPLES)
        logits = torch.zeros(len(x), 10)
        logits[torch.arange(len(x)), y] = 0.1
        shapes = {label: ok([int(label[1:].split(",")[0]), 10])
                  for label in ("(1, 28, 28)", "(7, 28, 28)", "(64, 28, 28)",
                                "(7, 1, 28, 28)", "(7, 784)")}
        data = {"shapes": shapes, "pair": ok({"first": logits[:64], "second": logits[:64]}),
                "init": ok(logits), "blank": ok(logits[:64]), "white": ok(logits[:64]),
                "grads": ok({"grads": {"w": 1.0}, "train_finite": True}),
                "eager": ok(logits[:64]), "agree": ok(logits[:64]), "parameters": ["w"]}
        data["evaluation"] = {"ok": True, "seconds": 0.1, "data": dict(data)}
        return data
    def fit(ns, **_):
        n, b, e = fx.FIT_N, fx.FIT_BATCH, fx.FIT_EPOCHS
        batches = [p[i:i + b] for _ in range(e) for p in [torch.randperm(n)]
                   for i in range(0, n, b)]
        start = fx.flat(fx.probe_body().parameters())
        events = []
        for k, batch in enumerate(batches):
            x = fx.stamp(fx.train_slice(fx.FIT_OFFSET, n)[0])[batch]
            events.append({"kind": "backward", "x": x, "params": start,
                           "grad": torch.zeros_like(start)})
            events.append({"kind": "step", "params": start - 0.01 * (k + 1)})
            start = start - 0.01 * (k + 1)
        values = {k: [0.5] * e for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        return {"n": n, "batch_size": b, "epochs": e, "batches": batches,
                "steps": len(batches), "foreign_steps": 0, "grad_errors": [0.0] * len(batches),
                "unknown_batches": 0, "loss_before": 2.3, "loss_after": 0.5,
                "history": {"type": "History", "values": values}, "constant": None,
                "events": events, "truncated": False, "final": start}
    def accuracy(ns, **_):  # right values, prepared for a secret of its own choosing
        from autograder.lessons.mnist_dnn.accuracy import probe_accuracy
        return dict(probe_accuracy({"accuracy": fx.reference_accuracy}, secret=1), secret=1)
    def hidden(ns, **_):
        try:  # the test labels, wherever this process can read them
            from shared.data import load_mnist
            (_, y_train), (_, y_test) = load_mnist()
            labels = {"test": y_test, "train": y_train[-5000:]}
        except Exception:
            labels = {"test": torch.zeros(10000), "train": torch.zeros(5000)}
        predictions = {k: v.to(torch.uint8) for k, v in labels.items()}
        return {"parameters": 2, "changed": 2, "secret": 0,
                "eager": ok(torch.zeros(100, 10)),
                "evaluation": {"ok": True, "seconds": 0.1,
                               "data": dict(predictions, agree=torch.zeros(100, 10))}}
    forged = {"model": model, "fit": fit, "accuracy": accuracy, "hidden": hidden}
'''

INSTALL_PROBES = FORGE + '''
    sys.modules["autograder.lessons.mnist_dnn.probes"].PROBES.update(forged)
    return 1
'''

INSTALL_RUNNER = FORGE + '''
    from autograder.engine import probing
    real = probing.run_probe
    def run_probe(probe, ns, seed=0, args=None):
        name = next((k for k, f in forged.items() if f.__name__ == probe.__name__[6:]), None)
        if name is None:
            return real(probe, ns, seed, args)
        return {"ok": True, "data": forged[name](ns), "seconds": 0.1}
    probing.run_probe = run_probe
    return 1
'''

INSTALL_WRITER = FORGE + '''
    from autograder.engine import wire
    real = wire.write_frame
    def write_frame(fd, reply):
        probe = {"model": "model", "fit": "fit", "accuracy": "accuracy", "hidden": "hidden"}
        outcome = reply.get("outcome") if isinstance(reply, dict) else None
        name = getattr(write_frame, "next", None)
        if outcome is not None and name in forged:
            reply["outcome"] = {"ok": True, "data": forged[name](None), "seconds": 0.1}
        return real(fd, reply)
    wire.write_frame = write_frame
    from autograder.engine import probing
    real_run = probing.run_probe
    def run_probe(probe, ns, seed=0, args=None):
        write_frame.next = probe.__name__[6:]
        return real_run(probe, ns, seed, args)
    probing.run_probe = run_probe
    return 1
'''


def forger(install: str, how: str) -> str:
    """Code that runs `install` when the file is defined, through one of the ways a grader that
    keeps only definitions still runs code."""
    body = f"def _forge():{install}\n\n"
    if how == "kept constant":
        return body + "FORGED = _forge()\n"
    if how == "default argument":
        return body + "def helper(x=_forge()):\n    return x\n"
    if how == "decorator":
        return body + ("def mark(f):\n    _forge()\n    return f\n\n\n"
                       "@mark\ndef helper():\n    pass\n")
    if how == "class body":
        return body + "class Helper:\n    FORGED = _forge()\n"
    if how == "metaclass":
        return body + ("class Meta(type):\n    def __new__(mcs, *args):\n        _forge()\n"
                       "        return super().__new__(mcs, *args)\n\n\n"
                       "class Helper(metaclass=Meta):\n    pass\n")
    raise ValueError(how)


ATTACKS = {  # name -> (what is replaced, how the code runs at definition time)
    "probe table, kept constant": (INSTALL_PROBES, "kept constant"),
    "probe table, default argument": (INSTALL_PROBES, "default argument"),
    "probe runner, decorator": (INSTALL_RUNNER, "decorator"),
    "probe runner, class body": (INSTALL_RUNNER, "class body"),
    "frame writer, metaclass": (INSTALL_WRITER, "metaclass"),
}
CLAIMS_ONLY = {"fit_returns_history"}  # 1 point, see README


def forged_lesson(folder: Path, name: str) -> Path:
    install, how = ATTACKS[name]
    text = UNFILLED.read_text()
    marker = "\n# %%\nclass MyModel"
    assert marker in text
    path = folder / (name.replace(", ", "_").replace(" ", "_") + ".py")
    path.write_text(text.replace(marker, "\n# %%\n" + forger(install, how) + marker, 1))
    return path


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forged")
    with ThreadPoolExecutor(2) as pool:
        reports = pool.map(lambda name: grade(forged_lesson(folder, name)), ATTACKS)
        return dict(zip(ATTACKS, reports))


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_definition_time_forgery_earns_only_what_is_a_claim_by_nature(forged, attack):
    report = forged[attack]
    earned = {r.check.id for r in report.results if r.passed}
    assert earned <= CLAIMS_ONLY, "\n".join(r.summary() for r in report.results)
    assert report.score <= 1


def test_a_forged_hidden_result_without_an_exported_model_earns_nothing(tmp_path):
    text = render("linear_model").replace(
        "\n# %%\nclass MyModel",
        "\n# %%\n" + forger(FORGE + '''
    from autograder.engine import probing
    real = probing.run_probe
    def run_probe(probe, ns, seed=0, args=None):
        out = real(probe, ns, seed, args)
        if probe.__name__ == "probe_hidden" and out["ok"]:
            out["data"] = dict(hidden(ns), blobs={})
        return out
    probing.run_probe = run_probe
    return 1
''', "kept constant") + "\n# %%\nclass MyModel", 1)
    path = tmp_path / "forged_hidden.py"
    path.write_text(text)
    result = grade(path, only="min_test_accuracy").results[0]
    assert not result.passed and "no trained model came back" in result.message


# ----------------------------------------------------------------------------- graphs

class Counter(nn.Module):
    """Returns labels in the grader's order: state kept in a buffer, one step per call."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.lin(x.reshape(len(x), -1)) + self.calls


class Lookup(nn.Module):
    """A nearest-neighbour table: the output of the row closest to each image."""

    def __init__(self):
        super().__init__()
        self.register_buffer("keys", torch.rand(50, 784))
        self.register_buffer("values", torch.randn(50, 10))

    def forward(self, x):
        similarity = x.reshape(len(x), -1) @ self.keys.t()
        return self.values[similarity.argmax(dim=1)]


class Huge(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 2000)
        self.out = nn.Linear(2000, 10)

    def forward(self, x):
        return self.out(self.lin(x.reshape(len(x), -1)))


def exported_bytes(model: nn.Module) -> bytes:
    """The program as the jail sends it."""
    blob = graphs.export(model.eval(), torch.zeros(100, 28, 28))["blob"]
    return blob.numpy().tobytes()


@pytest.mark.parametrize("model, phrase", [
    (Counter(), "changes a buffer or its input in place"),
    (Lookup(), "does not allow"),
    (Huge(), "at most 1,000,000"),
], ids=["stateful", "lookup", "over_budget"])
def test_the_clean_child_refuses_graphs_outside_the_allow_list(model, phrase):
    with pytest.raises(graphs.GraphRejected, match=phrase):
        graphs.load(exported_bytes(model), max_numbers=1_000_000)


@pytest.mark.parametrize("op", [torch.ops.aten.from_file.default, torch.ops.aten.rand.default,
                                torch.ops.aten.bernoulli.default, torch.ops.aten.index.Tensor])
def test_file_random_and_lookup_operations_are_off_the_allow_list(op):
    """torch.export will not trace aten::from_file, but a forged program may still hold it."""
    node = torch.fx.Graph().call_function(op, ())
    with pytest.raises(graphs.GraphRejected, match="does not allow"):
        graphs._allowed(node)


def test_forged_bytes_are_refused_with_a_clear_message():
    with pytest.raises(graphs.GraphRejected, match="could not be read"):
        graphs.load(b"PK\x03\x04 not a program", max_numbers=1_000_000)


class OnlyWhenExported(nn.Module):
    """The seed's softmax(dim=0) bug, hidden from the exporter."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        logits = self.lin(x.reshape(len(x), -1))
        if torch.compiler.is_exporting():
            return logits
        return torch.softmax(logits, dim=0)


def test_a_model_that_behaves_differently_while_exported_fails_the_model_checks():
    report = grade_namespace({"MyModel": OnlyWhenExported}, "01_mnist_dnn", only="model")
    assert report.score == 0
    assert all("other outputs when traced" in r.message for r in report.results)


def test_the_probe_nets_weights_do_not_depend_on_other_grading_threads():
    """The replay starts from the ProbeNet's initial weights. They were drawn from torch's
    global generator after seeding it, so a second grading thread building a model at the same
    moment changed them: a correct fit then lost 3 points ("the parameters changed outside
    optimizer.step()") in `batch --workers 2`. Now they come from a generator of their own."""
    from autograder.lessons.common import fixtures as fx

    expected = [p.clone() for p in fx.probe_body().parameters()]
    stop = []

    def draw():
        while not stop:
            torch.manual_seed(0)
            nn.Linear(784, 32)

    with ThreadPoolExecutor(2) as pool:
        noise = pool.submit(draw)
        try:
            bodies = [fx.probe_body() for _ in range(200)]
        finally:
            stop.append(True)
        noise.result()
    for body in bodies:
        assert all(torch.equal(p, q) for p, q in zip(body.parameters(), expected))
