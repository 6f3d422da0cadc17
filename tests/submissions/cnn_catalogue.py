"""The grader's catalogue of lesson-02 submissions: cnn_reference.py plus text substitutions.

Each variant names the checks it must fail (all others must pass) and, for most, a phrase its
message must contain: the cause the student has. `fails` lists public checks; `hidden` is the
expected verdict of min_test_accuracy for the variants whose hidden check the tests run (None:
not run: it trains a CNN on 12,000 images). The kinds: "correct" (full marks), "buggy" (the
named checks fail, with their cause), "adversarial" (contained, no undeserved points).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).with_name("cnn_reference.py")

# ------------------------------------------------------------------ lines of the template
BY_HAND_LOOP = ("    for r in range(height):\n        for s in range(width):\n"
                "            window = x[:, r:r + kh, s:s + kw]         # (C_in, kh, kw)\n"
                "            out[:, r, s] = (weight * window).sum(dim=(1, 2, 3)) + bias\n")
BY_HAND_SUM = "            out[:, r, s] = (weight * window).sum(dim=(1, 2, 3)) + bias\n"
BY_HAND_SIDES = "    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1\n"
BY_HAND_START = "def conv2d_by_hand(x, weight, bias):\n"
SIZE_RETURN = "    return (size + 2 * padding - kernel_size) // stride + 1\n"
SIZE_START = "def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:\n"
CHANNEL = "        if x.dim() == 3:\n            x = x.unsqueeze(1)                        # (B, 1, 28, 28)\n"
CONV1 = "        x = self.pool(torch.relu(self.conv1(x)))      # (B, 16, 12, 12)\n"
CONV2 = "        x = self.pool(torch.relu(self.conv2(x)))      # (B, 32, 4, 4)\n"
FLATTEN = "        x = x.flatten(1)                              # (B, 512)\n"
HIDDEN = "        x = torch.relu(self.hidden(x))                # (B, 128)\n"
FORWARD_START = "    def forward(self, x):\n"
FORWARD_END = "        return self.output(x)                         # (B, 10) logits\n"
POOL = "        self.pool = nn.MaxPool2d(kernel_size=2)\n"
INIT_END = "        self.output = nn.Linear(128, 10)\n"
CONV1_LAYER = "        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)\n"
CONV2_LAYER = "        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)\n"
LAYERS = CONV1_LAYER + CONV2_LAYER
SIDES = ("        side = conv_output_size(28, 5)                # 24\n"
         "        side = conv_output_size(side, 2, stride=2)    # 12\n"
         "        side = conv_output_size(side, 5)              # 8\n"
         "        side = conv_output_size(side, 2, stride=2)    # 4\n")
FLAT_LAYER = "        self.hidden = nn.Linear(32 * side * side, 128)\n"
CLASS_START = "class MyCNN(nn.Module):\n"
CLASS_END = FORWARD_END + "\n\n# %%\ncheck(\"model\")\n"


def whole_class(body: str) -> list[tuple[str, str]]:
    """A whole MyCNN in place of the template's, from its class line to its last line."""
    text = TEMPLATE.read_text()
    start, end = text.index(CLASS_START), text.index(CLASS_END) + len(FORWARD_END)
    return [(text[start:end], CLASS_START + body)]


def sequential(*layers: str) -> list[tuple[str, str]]:
    """A MyCNN that is one nn.Sequential on (B, 1, 28, 28) images."""
    return whole_class("    def __init__(self):\n        super().__init__()\n"
                       "        self.net = nn.Sequential(\n"
                       + "".join(f"            {layer},\n" for layer in layers)
                       + "        )\n\n    def forward(self, x):\n"
                       "        return self.net(x.reshape(len(x), 1, 28, 28))  # (B, 10)\n")


def by_hand(body: str) -> list[tuple[str, str]]:
    """A conv2d_by_hand whose loop is `body`."""
    return [(BY_HAND_LOOP, body)]


CONV_CHECKS = {"conv_by_hand_values", "conv_by_hand_own_work"}
SIZE_CHECKS = {"conv_output_size_values", "conv_output_size_int"}
MODEL_CHECKS = {"output_shape", "any_batch_size", "uses_convolutions", "parameter_budget",
                "batch_independence", "logits_not_probabilities", "output_depends_on_the_image",
                "non_linear", "pooling_keeps_the_digit", "gradients_reach_all_parameters",
                "initial_loss", "finite_outputs"}
SHORT = {"time_s": 6.0, "memory_mb": 2000}   # adversarial cases need not wait 20 s
# A slip in gap 2 is graded in gap 2 only; the model checks say MyCNN was built without it
GAP2_NOTE = "fix gap 2 so that your notebook's MyCNN is the one checked here"


@dataclass
class Variant:
    name: str
    kind: str                                   # "correct", "buggy", "adversarial"
    edits: list[tuple[str, str]]
    fails: set[str] | None = field(default_factory=set)  # None: not asserted
    says: dict[str, str] = field(default_factory=dict)   # check id -> phrase in its message
    hidden: bool | None = None                  # expected min_test_accuracy verdict, if run
    limits: dict = field(default_factory=dict)  # sandbox limits for adversarial cases


VARIANTS = [
    # ------------------------------------------------------------------ correct
    Variant("reference", "correct", [], hidden=True),
    Variant("relu_inplace", "correct", [  # the torchvision idiom: a fresh intermediate changes
        (POOL, POOL + "        self.relu = nn.ReLU(inplace=True)\n"),
        (CONV1, "        x = self.relu(self.pool(self.conv1(x)))\n"),
        (CONV2, "        x = self.pool(self.conv2(x)).relu_()\n")]),
    Variant("batch_norm", "correct", [
        (INIT_END, INIT_END + "        self.norm = nn.BatchNorm2d(16)\n"),
        (CONV1, "        x = self.pool(torch.relu(self.norm(self.conv1(x))))\n")]),
    Variant("dropout", "correct", [
        (INIT_END, INIT_END + "        self.dropout = nn.Dropout(0.25)\n"),
        (FLATTEN, "        x = self.dropout(x.flatten(1))\n"),
        (HIDDEN, "        x = self.dropout(torch.relu(self.hidden(x)))\n")]),
    Variant("functional_dropout", "correct", [
        (FLATTEN, "        x = F.dropout(x.flatten(1), 0.25, training=self.training)\n"),
        ("import torch\n", "import torch\nimport torch.nn.functional as F\n")]),
    Variant("avg_pool", "correct", [(POOL, "        self.pool = nn.AvgPool2d(kernel_size=2)\n")]),
    Variant("padding_and_stride", "correct", [
        (LAYERS, "        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)\n"
                 "        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1)\n"),
        (SIDES, "        side = conv_output_size(28, 3, padding=1)            # 28\n"
                "        side = conv_output_size(side, 2, stride=2)           # 14\n"
                "        side = conv_output_size(side, 3, stride=2, padding=1)  # 7\n"
                "        side = conv_output_size(side, 2, stride=2)           # 3\n")]),
    Variant("other_channels", "correct", [
        (LAYERS, "        self.conv1 = nn.Conv2d(1, 8, kernel_size=5)\n"
                 "        self.conv2 = nn.Conv2d(8, 24, kernel_size=5)\n"),
        (FLAT_LAYER, "        self.hidden = nn.Linear(24 * side * side, 128)\n")]),
    Variant("flatten_view_minus_one_first", "correct", [
        (FLATTEN, "        x = x.view(-1, 32 * 4 * 4)\n")]),
    Variant("no_relu_but_max_pool", "correct", [  # max-pooling bends the network: not affine
        (CONV1, "        x = self.pool(self.conv1(x))\n"),
        (CONV2, "        x = self.pool(self.conv2(x))\n"),
        (HIDDEN, "        x = self.hidden(x)\n")]),
    # the false fail: a CNN ending in a global average pooling
    Variant("adaptive_avg_pool", "correct", sequential(
        "nn.Conv2d(1, 16, 5), nn.MaxPool2d(2), nn.ReLU()",
        "nn.Conv2d(16, 32, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(1)",
        "nn.Flatten(), nn.Linear(32, 10)"), hidden=True),
    Variant("global_pool_after_deep_features", "correct", sequential(
        "nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)",
        "nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)",
        "nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)",
        "nn.Flatten(), nn.Linear(64, 10)")),
    Variant("lenet_tanh", "correct", sequential(
        "nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2)",
        "nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2)",
        "nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh()",
        "nn.Linear(84, 10)")),
    Variant("strided_convolutions", "correct", sequential(
        "nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU()",
        "nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU()",
        "nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10)")),
    Variant("sizes_written_out", "correct", [  # no conv_output_size in MyCNN: fine
        (SIDES, ""), (FLAT_LAYER, "        self.hidden = nn.Linear(32 * 4 * 4, 128)\n")]),
    Variant("by_hand_unfold", "correct", by_hand(
        "    patches = x.unfold(1, kh, 1).unfold(2, kw, 1)   # (C_in, H', W', kh, kw)\n"
        "    out = torch.einsum('chwij,ocij->ohw', patches, weight) + bias[:, None, None]\n")),
    Variant("by_hand_six_loops", "correct", by_hand(
        "    for o in range(c_out):\n        for r in range(height):\n"
        "            for s in range(width):\n                total = bias[o]\n"
        "                for c in range(c_in):\n                    for i in range(kh):\n"
        "                        for j in range(kw):\n"
        "                            total = total + weight[o, c, i, j] * x[c, r + i, s + j]\n"
        "                out[o, r, s] = total\n")),
    Variant("size_math_floor", "correct", [
        (SIZE_RETURN, "    import math\n"
                      "    return math.floor((size + 2 * padding - kernel_size) / stride) + 1\n")]),
    # ------------------------------------------------------------------ buggy: gap 1, by hand
    Variant("by_hand_flipped", "buggy", [
        (BY_HAND_SUM, "            out[:, r, s] = (weight.flip(-2, -1) * window).sum(dim=(1, 2, 3)) + bias\n")],
        CONV_CHECKS, {"conv_by_hand_values": "flipped the kernel",
                      "conv_by_hand_own_work": "values are wrong"}),
    Variant("by_hand_no_bias", "buggy", [
        (BY_HAND_SUM, "            out[:, r, s] = (weight * window).sum(dim=(1, 2, 3))\n")],
        CONV_CHECKS, {"conv_by_hand_values": "the bias is missing"}),
    Variant("by_hand_one_short", "buggy", [
        (BY_HAND_SIDES, "    height, width = x.shape[1] - kh, x.shape[2] - kw\n")],
        CONV_CHECKS, {"conv_by_hand_values": "one position short"}),
    Variant("by_hand_first_channel", "buggy", [
        (BY_HAND_SUM, "            out[:, r, s] = (weight[:, 0] * window[0]).sum(dim=(1, 2)) + bias\n")],
        CONV_CHECKS, {"conv_by_hand_values": "only the first input channel"}),
    Variant("by_hand_calls_conv2d", "buggy", by_hand(
        "    out = torch.nn.functional.conv2d(x[None], weight, bias)[0]\n"),
        {"conv_by_hand_own_work"}, {"conv_by_hand_own_work": "PyTorch's own convolution"}),
    Variant("by_hand_unfilled", "buggy", [
        (BY_HAND_START, BY_HAND_START + "    raise NotImplementedError(\"gap 1\")\n")],
        CONV_CHECKS, {"conv_by_hand_values": "gap 1 is not filled"}),
    # ------------------------------------------------------------------ buggy: gap 2, size
    # each slip costs gap 2's points only: MyCNN is graded with the grader's conv_output_size
    Variant("size_forgets_padding", "buggy", [
        (SIZE_RETURN, "    return (size - kernel_size) // stride + 1\n")],
        {"conv_output_size_values"}, {"conv_output_size_values": "size + 2 * padding"}),
    Variant("size_no_plus_one", "buggy", [
        (SIZE_RETURN, "    return (size + 2 * padding - kernel_size) // stride\n")],
        {"conv_output_size_values"},
        {"conv_output_size_values": "add 1 after the division",
         "output_shape": GAP2_NOTE}, hidden=True),
    Variant("size_ignores_stride", "buggy", [
        (SIZE_RETURN, "    return size + 2 * padding - kernel_size + 1\n")],
        {"conv_output_size_values"},
        {"conv_output_size_values": "divide by stride", "output_shape": GAP2_NOTE}),
    Variant("size_plus_one_before", "buggy", [
        (SIZE_RETURN, "    return (size + 2 * padding - kernel_size + 1) // stride\n")],
        {"conv_output_size_values"},
        {"conv_output_size_values": "add 1 after the division, not before it"}),
    Variant("size_round", "buggy", [
        (SIZE_RETURN, "    return round((size + 2 * padding - kernel_size) / stride) + 1\n")],
        {"conv_output_size_values"}, {"conv_output_size_values": "round()"}),
    Variant("size_ceil", "buggy", [
        (SIZE_RETURN, "    import math\n"
                      "    return math.ceil((size + 2 * padding - kernel_size) / stride) + 1\n")],
        {"conv_output_size_values"}, {"conv_output_size_values": "math.ceil"}),
    Variant("size_numpy_floor", "buggy", [
        (SIZE_RETURN, "    import numpy as np\n"
                      "    return np.floor((size + 2 * padding - kernel_size) / stride) + 1\n")],
        {"conv_output_size_int"},
        {"conv_output_size_int": "numpy", "output_shape": GAP2_NOTE}),
    Variant("size_true_division", "buggy", [
        (SIZE_RETURN, "    return (size + 2 * padding - kernel_size) / stride + 1\n")],
        SIZE_CHECKS,
        {"conv_output_size_values": "use // (integer division)",
         "conv_output_size_int": "not an int", "output_shape": GAP2_NOTE}),
    Variant("size_unfilled", "buggy", [
        (SIZE_RETURN, "    raise NotImplementedError(\"gap 2\")\n")],
        SIZE_CHECKS,
        {"conv_output_size_values": "gap 2 is not filled", "output_shape": "gap 2 is not filled"}),
    # ------------------------------------------------------------------ buggy: gap 3, MyCNN
    Variant("missing_channel", "buggy", [(CHANNEL, "")],
            {"output_shape"}, {"output_shape": "x.unsqueeze(1)"}, hidden=False),
    Variant("in_channels_3", "buggy", [
        (CONV1_LAYER, "        self.conv1 = nn.Conv2d(3, 16, kernel_size=5)\n")],
        MODEL_CHECKS, {"output_shape": "make its in_channels 1",
                       "non_linear": "make its in_channels 1"}),
    Variant("conv2_in_channels", "buggy", [
        (CONV2_LAYER, "        self.conv2 = nn.Conv2d(32, 32, kernel_size=5)\n")],
        MODEL_CHECKS, {"output_shape": "out_channels of the convolution before it (16)"}),
    Variant("view_hardcoded", "buggy", [(FLATTEN, "        x = x.view(64, -1)\n")],
            {"any_batch_size"}, {"any_batch_size": "x.flatten(1)"}),
    Variant("view_fixed_other_batch", "buggy", [(FLATTEN, "        x = x.view(128, -1)\n")],
            MODEL_CHECKS, {"output_shape": "the batch size is written into forward"}),
    Variant("view_all", "buggy", [(FLATTEN, "        x = x.view(-1)\n")],
            MODEL_CHECKS, {"output_shape": "flattened the batch too"}),
    Variant("pool_stride_one", "buggy", [
        (POOL, "        self.pool = nn.MaxPool2d(kernel_size=2, stride=1)\n")],
        MODEL_CHECKS, {"output_shape": "its stride must be 2"}),
    Variant("flat_size_wrong", "buggy", [
        (FLAT_LAYER, "        self.hidden = nn.Linear(32 * 5 * 5, 128)\n")],
        MODEL_CHECKS, {"output_shape": "the last feature maps are 32 × 4 × 4 = 512 numbers"}),
    Variant("float_layer_size", "buggy", [
        (FLAT_LAYER, "        self.hidden = nn.Linear(32 * side * side / 1, 128)\n")],
        MODEL_CHECKS, {"output_shape": "a layer size is a float"}),
    Variant("layer_in_forward", "buggy", [
        (FLATTEN, FLATTEN + "        x = nn.Linear(512, 512)(x)\n")],
        MODEL_CHECKS, {"output_shape": "create every layer once in __init__"}),
    Variant("softmax_at_the_end", "buggy", [
        (FORWARD_END, "        return torch.softmax(self.output(x), dim=1)\n")],
        {"logits_not_probabilities"}, {"logits_not_probabilities": "remove the final softmax"}),
    Variant("softmax_dim0", "buggy", [
        (FORWARD_END, "        return torch.softmax(self.output(x), dim=0)\n")],
        {"batch_independence"}, {"batch_independence": "dim=0"}),
    Variant("relu_on_logits", "buggy", [
        (FORWARD_END, "        return torch.relu(self.output(x))\n")],
        {"logits_not_probabilities"}, {"logits_not_probabilities": "ends with a ReLU"}),
    Variant("sigmoid_on_logits", "buggy", [
        (FORWARD_END, "        return torch.sigmoid(self.output(x))\n")],
        {"logits_not_probabilities"}, {"logits_not_probabilities": "ends with a sigmoid"}),
    Variant("ignores_the_image", "buggy", [
        (CHANNEL, CHANNEL + "        x = x * 0.0\n")],
        {"output_depends_on_the_image", "non_linear", "gradients_reach_all_parameters"},
        {"output_depends_on_the_image": "same output for every image",
         "non_linear": "same output for every image"}),
    Variant("zero_init", "buggy", [
        (INIT_END, INIT_END + "        for layer in (self.conv1, self.conv2, self.hidden, "
                              "self.output):\n"
                              "            nn.init.zeros_(layer.weight)\n")],
        {"output_depends_on_the_image", "non_linear", "gradients_reach_all_parameters"},
        {"output_depends_on_the_image": "zero or constant initialisation",
         "non_linear": "zero or constant initialisation",
         "gradients_reach_all_parameters": "zero or constant initialisation"}),
    Variant("pooling_destroys_the_image", "buggy", whole_class(
        "    def __init__(self):\n        super().__init__()\n"
        "        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)\n"
        "        self.pool = nn.MaxPool2d(kernel_size=conv_output_size(28, 5))  # 24\n"
        "        self.output = nn.Linear(16, 10)\n\n"
        "    def forward(self, x):\n"
        "        x = x.reshape(len(x), 1, 28, 28)\n"
        "        x = self.pool(torch.relu(self.conv1(x)))      # (B, 16, 1, 1)\n"
        "        return self.output(x.flatten(1))              # (B, 10)\n"),
        {"pooling_keeps_the_digit"}, {"pooling_keeps_the_digit": "nn.MaxPool2d(2)"}),
    Variant("no_non_linearity", "buggy", [
        (POOL, "        self.pool = nn.AvgPool2d(kernel_size=2)\n"),
        (CONV1, "        x = self.pool(self.conv1(x))\n"),
        (CONV2, "        x = self.pool(self.conv2(x))\n"),
        (HIDDEN, "        x = self.hidden(x)\n")],
        {"non_linear"}, {"non_linear": "is affine"}),
    # the 25/25: average pooling and no non-linearity between the convolutions
    Variant("avg_pool_no_relu_between_convolutions", "buggy", [
        (POOL, "        self.pool = nn.AvgPool2d(kernel_size=2)\n"),
        (CONV1, "        x = self.pool(self.conv1(x))\n"),
        (CONV2, "        x = self.pool(self.conv2(x))\n")],
        {"non_linear"}, {"non_linear": "between your 1st and 2nd convolutions"}),
    Variant("one_convolution_then_linear", "buggy", sequential(
        "nn.Conv2d(1, 16, 5), nn.AvgPool2d(2)",
        "nn.Flatten(), nn.Linear(16 * 12 * 12, 64), nn.ReLU(), nn.Linear(64, 10)"),
        {"non_linear"}, {"non_linear": "between your convolutions and the first linear"}),
    Variant("no_convolution", "buggy", whole_class(
        "    def __init__(self):\n        super().__init__()\n"
        "        self.hidden = nn.Linear(784, 100)\n        self.output = nn.Linear(100, 10)\n\n"
        "    def forward(self, x):\n"
        "        return self.output(torch.relu(self.hidden(x.flatten(1))))  # (B, 10)\n"),
        {"uses_convolutions"}, {"uses_convolutions": "nn.Conv2d"}),
    # the 25/25: a fully connected network behind a 1 × 1 identity convolution
    Variant("mlp_behind_1x1_convolution", "buggy", whole_class(
        "    def __init__(self):\n        super().__init__()\n"
        "        self.identity = nn.Conv2d(1, 1, kernel_size=1)\n"
        "        nn.init.ones_(self.identity.weight)\n        nn.init.zeros_(self.identity.bias)\n"
        "        self.hidden = nn.Linear(784, 256)\n        self.output = nn.Linear(256, 10)\n\n"
        "    def forward(self, x):\n"
        "        x = self.identity(x.reshape(len(x), 1, 28, 28))  # (B, 1, 28, 28)\n"
        "        return self.output(torch.relu(self.hidden(x.flatten(1))))  # (B, 10)\n"),
        {"uses_convolutions"}, {"uses_convolutions": "1 × 1 kernels",
                                "min_test_accuracy": "runs no convolution whose kernel"},
        hidden=False),
    Variant("over_budget", "buggy", [  # 1 point: the other checks still run
        (FLAT_LAYER, "        self.hidden = nn.Linear(32 * side * side, 1024)\n"),
        (INIT_END, "        self.output = nn.Linear(1024, 10)\n")],
        {"parameter_budget"}, {"parameter_budget": "at most 250,000"}),
    Variant("detached_features", "buggy", [(FLATTEN, "        x = x.flatten(1).detach()\n")],
            {"gradients_reach_all_parameters"},
            {"gradients_reach_all_parameters": "conv1.weight"}),
    Variant("changes_its_input", "buggy", [(CHANNEL, CHANNEL + "        x.clamp_(0, 1)\n")],
            MODEL_CHECKS, {"output_shape": "changes a buffer or its input in place"}),
    # ------------------------------------------------------------------ adversarial
    Variant("endless_forward", "adversarial", [
        (FORWARD_END, "        while True:\n            pass\n")],
        MODEL_CHECKS, {"output_shape": "too slow"}, limits=SHORT),
    Variant("endless_by_hand", "adversarial", [
        (BY_HAND_START, BY_HAND_START + "    while True:\n        pass\n")],
        CONV_CHECKS, {"conv_by_hand_values": "too slow"}, limits=SHORT),
    Variant("huge_network", "adversarial", [  # beyond what the grader takes at all
        (FLAT_LAYER, "        self.hidden = nn.Linear(32 * side * side, 5000)\n"),
        (INIT_END, "        self.output = nn.Linear(5000, 10)\n")],
        MODEL_CHECKS, {"parameter_budget": "at most 2,000,000"}, limits=SHORT),
]

BY_NAME = {v.name: v for v in VARIANTS}


def render(name: str) -> str:
    """The variant's source: the template with its edits (each must match exactly once)."""
    text = TEMPLATE.read_text()
    for old, new in BY_NAME[name].edits:
        if text.count(old) != 1:
            raise ValueError(f"variant {name}: {old!r} occurs {text.count(old)} times")
        text = text.replace(old, new)
    return text


def write(name: str, folder: Path) -> Path:
    path = Path(folder) / f"{name}.py"
    path.write_text(render(name))
    return path
