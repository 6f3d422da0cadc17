"""The grader's catalogue of lesson-02 submissions: cnn_reference.py plus text substitutions.

Each variant names the checks it must fail (all others must pass) and, for some, a phrase its
message must contain. `fails` lists public checks; `hidden` is the expected verdict of
min_test_accuracy for the few variants whose hidden check the tests run (None: not run).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).with_name("cnn_reference.py")

SIZE_RETURN = "    return (size + 2 * padding - kernel_size) // stride + 1\n"
CHANNEL = "        if x.dim() == 3:\n            x = x.unsqueeze(1)                        # (B, 1, 28, 28)\n"
CONV1 = "        x = self.pool(torch.relu(self.conv1(x)))      # (B, 16, 12, 12)\n"
CONV2 = "        x = self.pool(torch.relu(self.conv2(x)))      # (B, 32, 4, 4)\n"
FLATTEN = "        x = x.flatten(1)                              # (B, 512)\n"
HIDDEN = "        x = torch.relu(self.hidden(x))                # (B, 128)\n"
FORWARD_END = "        return self.output(x)                         # (B, 10) logits\n"
POOL = "        self.pool = nn.MaxPool2d(kernel_size=2)\n"
INIT_END = "        self.output = nn.Linear(128, 10)\n"
LAYERS = ("        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)\n"
          "        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)\n")
SIDES = ("        side = conv_output_size(28, 5)                # 24\n"
         "        side = conv_output_size(side, 2, stride=2)    # 12\n"
         "        side = conv_output_size(side, 5)              # 8\n"
         "        side = conv_output_size(side, 2, stride=2)    # 4\n")
FLAT_LAYER = "        self.hidden = nn.Linear(32 * side * side, 128)\n"
CLASS_START = "class MyCNN(nn.Module):\n"
CLASS_END = FORWARD_END + "\n\n# %%\ncheck(\"model\")\n"

# A whole MyCNN in place of the template's, from its class line to its last line
def whole_class(body: str) -> list[tuple[str, str]]:
    text = TEMPLATE.read_text()
    start, end = text.index(CLASS_START), text.index(CLASS_END) + len(FORWARD_END)
    return [(text[start:end], CLASS_START + body)]


MLP = ("    def __init__(self):\n        super().__init__()\n"
       "        self.hidden = nn.Linear(784, 100)\n        self.output = nn.Linear(100, 10)\n\n"
       "    def forward(self, x):\n"
       "        return self.output(torch.relu(self.hidden(x.flatten(1))))  # (B, 10)\n")
POOL_24 = ("    def __init__(self):\n        super().__init__()\n"
           "        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)\n"
           "        self.pool = nn.MaxPool2d(kernel_size=conv_output_size(28, 5))  # 24\n"
           "        self.output = nn.Linear(16, 10)\n\n"
           "    def forward(self, x):\n"
           "        x = x.reshape(len(x), 1, 28, 28)\n"
           "        x = self.pool(torch.relu(self.conv1(x)))      # (B, 16, 1, 1)\n"
           "        return self.output(x.flatten(1))              # (B, 10)\n")
GLOBAL_POOL_DEEP = (  # a global pooling, but after convolutions that have seen 18 × 18 pixels
    "    def __init__(self):\n        super().__init__()\n"
    "        self.features = nn.Sequential(\n"
    "            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
    "            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
    "            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))\n"
    "        self.output = nn.Linear(64, 10)\n\n"
    "    def forward(self, x):\n"
    "        x = self.features(x.reshape(len(x), 1, 28, 28))  # (B, 64, 1, 1)\n"
    "        return self.output(x.flatten(1))                 # (B, 10)\n")
SEQUENTIAL = (
    "    def __init__(self):\n        super().__init__()\n"
    "        self.net = nn.Sequential(\n"
    "            nn.Unflatten(1, (1, 28)), nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),\n"
    "            nn.Flatten(), nn.Linear(8 * 13 * 13, 10))\n\n"
    "    def forward(self, x):\n"
    "        return self.net(x.reshape(len(x), 28, 28))       # (B, 10)\n")


@dataclass
class Variant:
    name: str
    kind: str                                   # "correct", "weak", "buggy", "adversarial"
    edits: list[tuple[str, str]]
    fails: set[str] | None = field(default_factory=set)  # None: not asserted
    says: dict[str, str] = field(default_factory=dict)   # check id -> phrase in its message
    hidden: bool | None = None                  # expected min_test_accuracy verdict, if run
    limits: dict = field(default_factory=dict)  # sandbox limits for adversarial cases


SIZE_CHECKS = {"conv_output_size_values", "conv_output_size_int"}
MODEL_CHECKS = {"output_shape", "any_batch_size", "uses_convolutions", "parameter_budget",
                "batch_independence", "logits_not_probabilities", "non_linear",
                "pooling_keeps_the_digit", "gradients_reach_all_parameters", "initial_loss",
                "finite_outputs"}
SHORT = {"time_s": 6.0, "memory_mb": 2000}   # adversarial cases need not wait 20 s

VARIANTS = [
    # ------------------------------------------------------------------ correct
    Variant("reference", "correct", [], hidden=True),
    Variant("batch_norm", "correct", [
        (INIT_END, INIT_END + "        self.norm = nn.BatchNorm2d(16)\n"),
        (CONV1, "        x = self.pool(torch.relu(self.norm(self.conv1(x))))\n")]),
    Variant("dropout", "correct", [
        (INIT_END, INIT_END + "        self.dropout = nn.Dropout(0.25)\n"),
        (FLATTEN, "        x = self.dropout(x.flatten(1))\n"),
        (HIDDEN, "        x = self.dropout(torch.relu(self.hidden(x)))\n")], hidden=True),
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
    Variant("global_pool_after_deep_features", "weak", whole_class(GLOBAL_POOL_DEEP)),
    Variant("sequential_unflatten", "weak", whole_class(SEQUENTIAL)),
    Variant("no_relu_but_max_pool", "correct", [  # max-pooling bends the network: not affine
        (CONV1, "        x = self.pool(self.conv1(x))\n"),
        (CONV2, "        x = self.pool(self.conv2(x))\n"),
        (HIDDEN, "        x = self.hidden(x)\n")]),
    # ------------------------------------------------------------------ buggy: size
    Variant("size_forgets_padding", "buggy", [
        (SIZE_RETURN, "    return (size - kernel_size) // stride + 1\n")],
        {"conv_output_size_values"}, {"conv_output_size_values": "size + 2 * padding"}),
    Variant("size_true_division", "buggy", [
        (SIZE_RETURN, "    return (size + 2 * padding - kernel_size) / stride + 1\n")],
        SIZE_CHECKS | MODEL_CHECKS,
        {"conv_output_size_values": "use // (integer division)",
         "conv_output_size_int": "not an int",
         "output_shape": "comes from conv_output_size (gap 1)"}),
    Variant("size_unfilled", "buggy", [
        (SIZE_RETURN, "    raise NotImplementedError(\"gap 1\")\n")],
        SIZE_CHECKS | MODEL_CHECKS,
        {"conv_output_size_values": "gap 1 is not filled", "output_shape": "gap 1 is not filled"}),
    # ------------------------------------------------------------------ buggy: model
    Variant("missing_channel", "buggy", [(CHANNEL, "")],
            {"output_shape"}, {"output_shape": "x.unsqueeze(1)"}, hidden=False),
    Variant("view_hardcoded", "buggy", [(FLATTEN, "        x = x.view(64, -1)\n")],
            {"any_batch_size"}, {"any_batch_size": "x.flatten(1)"}),
    Variant("softmax_at_the_end", "buggy", [
        (FORWARD_END, "        return torch.softmax(self.output(x), dim=1)\n")],
        {"logits_not_probabilities"}, {"logits_not_probabilities": "remove the final softmax"}),
    Variant("softmax_dim0", "buggy", [
        (FORWARD_END, "        return torch.softmax(self.output(x), dim=0)\n")],
        {"batch_independence"}, {"batch_independence": "dim=0"}),
    Variant("pooling_destroys_the_image", "buggy", whole_class(POOL_24),
            {"pooling_keeps_the_digit"}, {"pooling_keeps_the_digit": "nn.MaxPool2d(2)"},
            hidden=False),
    Variant("no_non_linearity", "buggy", [
        (POOL, "        self.pool = nn.AvgPool2d(kernel_size=2)\n"),
        (CONV1, "        x = self.pool(self.conv1(x))\n"),
        (CONV2, "        x = self.pool(self.conv2(x))\n"),
        (HIDDEN, "        x = self.hidden(x)\n")],
        {"non_linear"}, {"non_linear": "add a ReLU"}),
    Variant("no_convolution", "buggy", whole_class(MLP),
            {"uses_convolutions"}, {"uses_convolutions": "nn.Conv2d"}),
    Variant("over_budget", "buggy", [
        (FLAT_LAYER, "        self.hidden = nn.Linear(32 * side * side, 1024)\n"),
        (INIT_END, "        self.output = nn.Linear(1024, 10)\n")],
        MODEL_CHECKS, {"parameter_budget": "at most 250,000"}),
    Variant("detached_features", "buggy", [(FLATTEN, "        x = x.flatten(1).detach()\n")],
            {"gradients_reach_all_parameters"},
            {"gradients_reach_all_parameters": "conv1.weight"}),
    # ------------------------------------------------------------------ adversarial
    Variant("endless_forward", "adversarial", [
        (FORWARD_END, "        while True:\n            pass\n")],
        MODEL_CHECKS, {"output_shape": "too slow"}, limits=SHORT),
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
