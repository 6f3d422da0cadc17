"""The exported model travels as plain data (plaingraph): the clean child rebuilds and runs it
exactly, and bytes forged by the student's code are refused without running anything from
them — in particular torch.export's own archive, whose loading unpickles what it says."""
import io
import json
import struct
import zipfile

import pytest
import torch
from torch import nn

from autograder.lessons.common import graphs, plaingraph


class Dense(nn.Module):
    """Batch norm, dropout and a no-grad region: what lesson 01's variants use."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(784, 64), nn.Linear(64, 10)
        self.norm, self.drop = nn.BatchNorm1d(64), nn.Dropout(0.3)

    def forward(self, x):
        x = x.reshape(len(x), -1)
        with torch.no_grad():
            x = x * 1.0
        return self.out(self.drop(torch.relu(self.norm(self.hidden(x)))))


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.pool, self.out = nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), nn.Linear(8 * 144, 10)

    def forward(self, x):
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.out(torch.relu(self.pool(self.conv(x))).flatten(1))


def blob_of(model) -> bytes:
    exported = graphs.export(model.eval(), torch.randn(100, 28, 28))
    assert "blob" in exported, exported
    return exported["blob"].numpy().tobytes()


@pytest.mark.parametrize("model", [Dense(), Conv()], ids=["dense", "conv"])
def test_the_rebuilt_program_computes_what_the_model_computes(model):
    torch.manual_seed(0)
    program = graphs.load(blob_of(model), max_numbers=1_000_000)
    assert sorted(n for n, _ in program.named_parameters()) == \
        sorted(n for n, _ in model.named_parameters())
    for batch in (1, 7, 130):  # the batch size stays dynamic
        x = torch.randn(batch, 28, 28)
        with torch.no_grad():
            assert torch.allclose(program(x), model(x), rtol=1e-4, atol=1e-5)
    nn.functional.cross_entropy(program(torch.randn(5, 28, 28)), torch.zeros(5).long()).backward()
    assert all(p.grad is not None for p in program.parameters())


def forge(nodes, tensors=(), data=b"") -> bytes:
    header = json.dumps({"nodes": nodes, "tensors": list(tensors)}).encode()
    return plaingraph.MAGIC + struct.pack("<Q", len(header)) + header + data


X = {"op": "placeholder", "name": "x", "kind": "input"}
OUT = {"op": "output", "name": "output", "args": {"tuple": [{"list": [{"node": "y"}]}]}}


def call(target, *args):
    return {"op": "call_function", "name": "y", "target": target,
            "args": {"tuple": [{"node": "x"}, *args]}, "kwargs": {"dict": {}}}


@pytest.mark.parametrize("blob, phrase", [
    (forge([X, call("aten::relu.default"), OUT]), None),  # well formed: accepted
    (forge([X, call("aten::from_file.default"), OUT]), "does not allow"),
    (forge([X, call("aten::bernoulli.default"), OUT]), "does not allow"),
    (forge([X, call("aten::relu_.default"), OUT]), "in place"),
    (forge([X, call("builtins::eval", "1"), OUT]), "does not allow"),
    (forge([X, call("python::system", "true"), OUT]), "does not allow"),
    (forge([X, call("aten::__import__.default"), OUT]), "does not allow"),
    (forge([X, call("aten::relu.default", {"float": "__import__('os')"}), OUT]), "unknown kind"),
    (forge([X, {**call("aten::relu.default"), "args": {"tuple": [{"node": "later"}]}}, OUT]),
     "defined after"),
    (forge([X, X, call("aten::relu.default"), OUT]), "name of its own"),
    (forge([X, call("aten::relu.default")]), "without its output"),
    (forge([X, call("aten::relu.default"), OUT],
           [{"name": "w", "dtype": "object", "shape": [1], "offset": 0, "nbytes": 8}],
           b"\0" * 8), "malformed tensor"),
    (forge([X, call("aten::relu.default"), OUT],
           [{"name": "w", "dtype": "float32", "shape": [10], "offset": 0, "nbytes": 40}],
           b"\0" * 8), "malformed tensor"),
    (forge([X, {"op": "call_module", "name": "y", "target": "os"}, OUT]), "unknown kind"),
    (b"AGPLAIN1" + struct.pack("<Q", 2 ** 40) + b"{}", "oversized"),
], ids=["ok", "from_file", "random", "in_place", "eval", "system", "import", "float_payload",
        "forward_ref", "duplicate", "no_output", "dtype", "short_data", "call_module", "huge"])
def test_forged_plain_programs_are_refused_by_name(blob, phrase):
    if phrase is None:
        program = graphs.load(blob, max_numbers=10)
        assert torch.equal(program(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))
    else:
        with pytest.raises(graphs.GraphRejected, match=phrase):
            graphs.load(blob, max_numbers=10)


class Payload:
    def __reduce__(self):
        return (torch.set_default_dtype, (torch.float64,))


def test_a_torch_export_archive_that_asks_for_a_pickle_runs_nothing_in_the_clean_child(tmp_path):
    """The attack that made torch.export.save's format unfit: its loader unpickles a weight
    whose config says use_pickle. Such an archive is refused before anything in it runs."""
    program = torch.export.export(Conv().eval(), (torch.randn(4, 28, 28),))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    source, poisoned = zipfile.ZipFile(io.BytesIO(buffer.getvalue())), io.BytesIO()
    with zipfile.ZipFile(poisoned, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith("model_weights_config.json"):
                config = json.loads(data)
                for entry in config["config"].values():
                    entry["use_pickle"] = True
                data = json.dumps(config).encode()
            elif "/weights/" in name:
                pickled = io.BytesIO()
                torch.save(Payload(), pickled)
                data = pickled.getvalue()
            target.writestr(name, data)
    with pytest.raises(graphs.GraphRejected, match="could not be read"):
        graphs.load(poisoned.getvalue(), max_numbers=1_000_000)
    assert torch.get_default_dtype() == torch.float32  # the payload never ran


class InPlace(nn.Module):
    """nn.ReLU(inplace=True) and .relu_() on fresh intermediates: the torchvision idiom."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.out = nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Linear(
            4 * 26 * 26, 10)

    def forward(self, x):
        x = self.relu(self.conv(x.reshape(len(x), 1, 28, 28)))
        return self.out(x.flatten(1).relu_())


class ChangesItsInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = nn.Linear(784, 10)

    def forward(self, x):
        x.clamp_(0, 1)  # the caller's images change
        return self.out(x.reshape(len(x), -1))


def test_an_in_place_operation_on_an_intermediate_is_checked_as_its_functional_form():
    model = InPlace()
    program = graphs.load(blob_of(model), max_numbers=1_000_000)
    ops = {node["fn"]._schema.name for node in program.nodes if node["op"] == "call_function"
           and hasattr(node["fn"], "_schema")}
    assert "aten::relu" in ops and not any(op.endswith("_") for op in ops), ops
    x = torch.randn(3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(program(x), model(x), rtol=1e-4, atol=1e-5)


def test_a_model_that_changes_its_input_in_place_is_refused():
    with pytest.raises(graphs.GraphRejected, match="changes a buffer or its input in place"):
        graphs.load(blob_of(ChangesItsInput()), max_numbers=1_000_000)
