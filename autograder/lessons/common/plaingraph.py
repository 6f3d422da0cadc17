"""An exported program on the wire: plain JSON and raw tensor bytes, never a pickle.

`torch.export.save`/`load` cannot carry a student's program to the clean child: `load`
unpickles any weight whose archive entry says "use_pickle" (`torch.load(weights_only=False)`),
falls back to an unsafe load for sample inputs, and `sympify`s shape expressions (`eval`) — all
before any check can refuse the program, in the one process that holds the test split and the
grading's secret. So the jail sends only what the clean child needs to *run* the graph:

    MAGIC, 8 bytes: the header's length, the header (JSON), then the tensors' bytes

The header lists the graph's nodes (an operator's name, its arguments as plain data, other
nodes by name) and each tensor's name, dtype, shape and place in the bytes. The clean child
parses it with `json` and `torch.frombuffer`, resolves each operator by name through
`graphs.resolve` (the allow-list), and runs the nodes with the small interpreter below: nothing
from the jail is imported, unpickled or evaluated.
"""
from __future__ import annotations

import json
import math
import struct

import torch

MAGIC = b"AGPLAIN1"
MAX_HEADER = 16 * 2 ** 20
MAX_NODES = 20_000
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool)}
MEMORY_FORMATS = {"contiguous_format": torch.contiguous_format,
                  "preserve_format": torch.preserve_format, "channels_last": torch.channels_last}
KINDS = ("input", "parameter", "buffer", "constant")


class Unreadable(ValueError):
    """The bytes are not a well-formed plain program."""


class Unsupported(ValueError):
    """In the jail: the program holds something the plain format cannot carry."""


# ----------------------------------------------------------------------------- in the jail

def encode(program) -> bytes:
    """The plain form of a torch.export ExportedProgram with one user input and output."""
    kinds, tensors = _placeholders(program)
    nodes = _graph(program.graph_module, kinds)
    table, chunks, offset = [], [], 0
    for name, tensor in tensors.items():
        data = tensor.detach().contiguous().cpu()
        raw = data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
        table.append({"name": name, "dtype": _dtype_name(data.dtype),
                      "shape": list(data.shape), "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    header = json.dumps({"nodes": nodes, "tensors": table}).encode()
    return MAGIC + struct.pack("<Q", len(header)) + header + b"".join(chunks)


def _placeholders(program) -> tuple[dict, dict]:
    """placeholder name -> {"kind", "tensor"}, and tensor name -> tensor."""
    from torch.export.graph_signature import InputKind

    kind_of = {InputKind.USER_INPUT: "input", InputKind.PARAMETER: "parameter",
               InputKind.BUFFER: "buffer", InputKind.CONSTANT_TENSOR: "constant"}
    kinds, tensors = {}, {}
    for spec in program.graph_signature.input_specs:
        if spec.kind not in kind_of:
            raise Unsupported(f"forward takes a {spec.kind.name.lower()}")
        kind = kind_of[spec.kind]
        kinds[spec.arg.name] = {"kind": kind, "tensor": spec.target}
        if kind != "input":
            source = program.constants if kind == "constant" else program.state_dict
            if spec.target not in source:  # a non-persistent buffer is kept with the constants
                source = program.constants
            tensors[spec.target] = source[spec.target]
    return kinds, tensors


def _graph(module, kinds: dict | None = None) -> list[dict]:
    nodes = []
    for node in module.graph.nodes:
        entry = {"op": node.op, "name": node.name}
        if node.op == "placeholder":
            entry.update(kinds[node.name] if kinds is not None else {"kind": "input"})
        elif node.op == "call_function":
            entry.update(target=target_name(node.target), args=_plain(node.args),
                         kwargs=_plain(node.kwargs))
        elif node.op == "get_attr":
            sub = getattr(module, node.target)
            if not isinstance(sub, torch.fx.GraphModule):
                raise Unsupported(f"forward reads the attribute {node.target}")
            entry["graph"] = _graph(sub)
        elif node.op == "output":
            entry["args"] = _plain(node.args)
        else:
            raise Unsupported(f"forward calls {node.op} {node.target}")
        nodes.append(entry)
    return nodes


def target_name(target) -> str:
    """"aten::linear.default", "hop::wrap_with_set_grad_enabled" or "python::getitem"."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name}.{target._overloadname}"
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"hop::{target.name()}"
    if getattr(target, "__module__", None) in ("_operator", "operator"):
        return f"python::{target.__name__}"
    raise Unsupported(f"forward calls {getattr(target, '__name__', target)!r}, which is not "
                      f"a PyTorch operator")


def _plain(value):
    if isinstance(value, torch.fx.Node):
        return {"node": value.name}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [_plain(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": {str(k): _plain(v) for k, v in value.items()}}
    if isinstance(value, torch.dtype):
        return {"dtype": _dtype_name(value)}
    if isinstance(value, torch.device):
        return {"device": "cpu"}  # the clean child runs on the CPU
    if isinstance(value, torch.memory_format):
        name = next((k for k, v in MEMORY_FORMATS.items() if v == value), None)
        if name:
            return {"memory_format": name}
    if isinstance(value, torch.layout) and value == torch.strided:
        return {"layout": "strided"}
    raise Unsupported(f"an argument of type {type(value).__name__}")


def _dtype_name(dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise Unsupported(f"a tensor of dtype {name}")
    return name


# ----------------------------------------------------------------------------- in the clean child

def decode(blob: bytes, resolve) -> tuple[list, dict]:
    """(nodes with their callables, {tensor name: tensor}) or Unreadable. `resolve(name, args,
    kwargs)` returns the callable of an allowed operator or raises (graphs.GraphRejected)."""
    if len(blob) < len(MAGIC) + 8 or not blob.startswith(MAGIC):
        raise Unreadable("not a program the grader wrote")
    (length,) = struct.unpack("<Q", blob[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    if length > min(MAX_HEADER, len(blob) - start):
        raise Unreadable("a truncated or oversized header")
    try:
        header = json.loads(blob[start:start + length])
    except (ValueError, RecursionError) as error:
        raise Unreadable(f"an unreadable header ({type(error).__name__})")
    if not isinstance(header, dict) or not isinstance(header.get("nodes"), list) \
            or not isinstance(header.get("tensors"), list):
        raise Unreadable("a header without nodes and tensors")
    tensors = _tensors(header["tensors"], memoryview(blob)[start + length:])
    counter = [0]
    nodes = _nodes(header["nodes"], resolve, counter, set(tensors), top=True)
    return nodes, tensors


def _tensors(table: list, data: memoryview) -> dict:
    tensors = {}
    for entry in table:
        try:
            name, dtype, shape = entry["name"], DTYPES[entry["dtype"]], entry["shape"]
            offset, nbytes = entry["offset"], entry["nbytes"]
        except (KeyError, TypeError):
            raise Unreadable("a malformed tensor entry")
        if not (isinstance(name, str) and isinstance(shape, list) and len(shape) <= 8
                and all(type(s) is int and 0 <= s for s in shape)
                and type(offset) is int and type(nbytes) is int and 0 <= offset
                and offset + nbytes <= len(data) and name not in tensors):
            raise Unreadable(f"a malformed tensor entry ({str(name)[:40]})")
        numel = math.prod(shape)
        if numel * torch.empty((), dtype=dtype).element_size() != nbytes:
            raise Unreadable(f"tensor {name[:40]}: its size does not match its shape")
        raw = bytearray(data[offset:offset + nbytes])
        flat = torch.frombuffer(raw, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(shape)
    return tensors


def _nodes(entries: list, resolve, counter: list, tensor_names: set, top: bool) -> list:
    seen, nodes = set(), []
    for entry in entries:
        counter[0] += 1
        if counter[0] > MAX_NODES or not isinstance(entry, dict):
            raise Unreadable("too many or malformed nodes")
        op, name = entry.get("op"), entry.get("name")
        if not isinstance(name, str) or name in seen:
            raise Unreadable("a node without a name of its own")
        node = {"op": op, "name": name}
        if op == "placeholder":
            kind = entry.get("kind")
            if kind not in KINDS or (not top and kind != "input") or \
                    (kind != "input" and entry.get("tensor") not in tensor_names):
                raise Unreadable(f"placeholder {name[:40]}: an unknown kind or tensor")
            node.update(kind=kind, tensor=entry.get("tensor"))
        elif op == "call_function":
            args, kwargs = _value(entry.get("args")), _value(entry.get("kwargs"))
            if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                raise Unreadable(f"node {name[:40]}: malformed arguments")
            _refs(args, seen), _refs(kwargs, seen)
            node.update(fn=resolve(entry.get("target"), args, kwargs), args=args, kwargs=kwargs)
        elif op == "get_attr":
            node["graph"] = _nodes(_list(entry.get("graph")), resolve, counter, tensor_names,
                                   top=False)
        elif op == "output":
            node["args"] = _value(entry.get("args"))
            _refs(node["args"], seen)
        else:
            raise Unreadable(f"node {name[:40]}: an unknown kind of node")
        seen.add(name)
        nodes.append(node)
    if not nodes or nodes[-1]["op"] != "output":
        raise Unreadable("a graph without its output")
    return nodes


def _list(value) -> list:
    if not isinstance(value, list):
        raise Unreadable("a malformed subgraph")
    return value


def _value(value, depth: int = 0):
    """Plain JSON back to arguments; a node reference stays a ("node", name) marker."""
    if depth > 20:
        raise Unreadable("arguments nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (kind, inner), = value.items()
        if kind == "node" and isinstance(inner, str):
            return Ref(inner)
        if kind in ("list", "tuple") and isinstance(inner, list):
            items = [_value(v, depth + 1) for v in inner]
            return items if kind == "list" else tuple(items)
        if kind == "dict" and isinstance(inner, dict):
            return {str(k): _value(v, depth + 1) for k, v in inner.items()}
        if kind == "float" and inner in ("inf", "-inf", "nan"):
            return float(inner)
        if kind == "dtype" and inner in DTYPES:
            return DTYPES[inner]
        if kind == "device" and inner == "cpu":
            return torch.device("cpu")
        if kind == "memory_format" and inner in MEMORY_FORMATS:
            return MEMORY_FORMATS[inner]
        if kind == "layout" and inner == "strided":
            return torch.strided
    raise Unreadable("an argument of an unknown kind")


class Ref(str):
    """A reference to an earlier node's value."""


def _refs(value, seen: set) -> None:
    if isinstance(value, Ref):
        if value not in seen:
            raise Unreadable("a node uses a value defined after it")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _refs(v, seen)
    elif isinstance(value, dict):
        for v in value.values():
            _refs(v, seen)


class Program(torch.nn.Module):
    """The decoded program: parameters (trainable) and buffers under their own names, and a
    forward that runs the nodes in order. It calls nothing but the resolved operators."""

    def __init__(self, nodes: list, tensors: dict):
        super().__init__()
        self._nodes = nodes
        self._values = {}  # placeholder name -> its parameter, buffer or constant
        for node in nodes:
            if node["op"] == "placeholder" and node["kind"] != "input":
                self._values[node["name"]] = self._own(node["kind"], node["tensor"],
                                                       tensors[node["tensor"]])

    @property
    def nodes(self) -> list:
        return self._nodes

    def _own(self, kind: str, name: str, tensor: torch.Tensor):
        *path, leaf = name.split(".")
        owner = self
        for part in path:
            owner = self._child(owner, part)
        try:
            if kind == "parameter":
                value = torch.nn.Parameter(tensor.float() if tensor.is_floating_point()
                                           else tensor, requires_grad=tensor.is_floating_point())
                owner.register_parameter(leaf, value)
            else:
                value = tensor
                owner.register_buffer(leaf, value, persistent=False)
        except (KeyError, TypeError, AttributeError) as error:
            raise Unreadable(f"tensor {name[:40]}: {error}")
        return getattr(owner, leaf)

    @staticmethod
    def _child(owner, part: str):
        if not (part.isidentifier() or (part.isascii() and part.isdigit())):  # "body.1.weight"
            raise Unreadable(f"a tensor name with {part[:40]!r}")
        child = owner._modules.get(part)
        if child is None:
            child = torch.nn.Module()
            try:
                owner.add_module(part, child)
            except (KeyError, TypeError) as error:
                raise Unreadable(f"a tensor name with {part[:40]!r}: {error}")
        return child

    def forward(self, x):
        outputs = run(self._nodes, [x], self._values)
        if not isinstance(outputs, (list, tuple)) or len(outputs) != 1:
            raise Unreadable("the program does not return one tensor")
        return outputs[0]


def run(nodes: list, inputs: list, values: dict):
    """Run the nodes on `inputs` (the user inputs, in order); the output node's value."""
    env, inputs = dict(values), list(inputs)
    for node in nodes:
        op = node["op"]
        if op == "placeholder":
            if node["kind"] == "input":
                if not inputs:
                    raise Unreadable("the program takes more inputs than it is given")
                env[node["name"]] = inputs.pop(0)
        elif op == "get_attr":
            env[node["name"]] = Subgraph(node["graph"])
        elif op == "call_function":
            env[node["name"]] = node["fn"](*_bind(node["args"], env), **_bind(node["kwargs"], env))
        else:
            return _bind(node["args"], env)[0]
    raise Unreadable("a graph without its output")


class Subgraph:
    """A get_attr subgraph (the body of `with torch.no_grad():` in forward)."""

    def __init__(self, nodes):
        self.nodes = nodes

    def __call__(self, *inputs):
        return run(self.nodes, list(inputs), {})


def _bind(value, env: dict):
    if isinstance(value, Ref):
        return env[value]
    if isinstance(value, list):
        return [_bind(v, env) for v in value]
    if isinstance(value, tuple):
        return tuple(_bind(v, env) for v in value)
    if isinstance(value, dict):
        return {k: _bind(v, env) for k, v in value.items()}
    return value


def set_grad_enabled_region(enabled, body, *inputs):
    """hop::wrap_with_set_grad_enabled: run a subgraph with gradients on or off."""
    if not isinstance(enabled, bool) or not isinstance(body, Subgraph):
        raise TypeError("wrap_with_set_grad_enabled expects (bool, subgraph, *inputs)")
    with torch.set_grad_enabled(enabled):
        return body(*inputs)

