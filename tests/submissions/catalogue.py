"""The grader's catalogue of submissions: reference_min.py plus text substitutions.

Each variant names the checks it must fail (all others must pass) and, for some of them, a
phrase its message must contain. `fails` lists public checks; `hidden` is the expected
verdict of min_test_accuracy for the variants whose hidden check the tests run (None: not run).
The nbgrader tests reuse `render(name)` to build notebooks of a few of these.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).with_name("reference_min.py")

FORWARD_END = "        return self.out(x)                        # (B, 10) logits\n"
RELU = "        x = torch.relu(self.hidden(x))\n"
FLATTEN = "        x = x.reshape(len(x), -1)                 # (B, 784)\n"
STEP_LOOP = "            optimizer.step()\n"
ZERO_GRAD = "            optimizer.zero_grad()\n"
SHUFFLE = "        permutation = torch.randperm(len(x_train))\n"
BATCHES = "        for i in range(0, len(x_train), batch_size):\n"
ADAM = "torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)"
ACC_CHUNK = "correct += (model(x[i:i + chunk]).argmax(dim=1) == y[i:i + chunk]).sum().item()"
ACC_RETURN = "    return correct / len(x)\n"
ACC_EVAL = "    model.eval()\n    correct = 0\n"
ACC_RESTORE = "    model.train(was_training)\n    return correct / len(x)\n"
INIT_END = "        self.out = nn.Linear(128, 10)\n"
FIT_HEAD = "    history = History()\n"
TOP = "import torch\nfrom torch import nn\n"
MODEL_CLASS = ("class MyModel(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
               "        self.hidden = nn.Linear(784, 128)\n" + INIT_END + "\n"
               "    def forward(self, x):\n" + FLATTEN + RELU + FORWARD_END)


@dataclass
class Variant:
    name: str
    kind: str                                   # "buggy", "correct", "adversarial"
    edits: list[tuple[str, str]]
    fails: set[str] | None = field(default_factory=set)  # None: not asserted
    says: dict[str, str] = field(default_factory=dict)   # check id -> phrase in its message
    hidden: bool | None = None                  # expected min_test_accuracy verdict, if run
    limits: dict = field(default_factory=dict)  # sandbox limits for adversarial cases


MODEL_CHECKS = {"output_shape", "batch_independence", "logits_not_probabilities",
                "gradients_reach_all_parameters", "initial_loss", "finite_outputs"}
FIT_CHECKS = {"fit_returns_history", "fit_loss_decreases", "fit_visits_every_sample",
              "fit_reshuffles", "fit_step_count", "fit_zero_grad"}
ACCURACY_CHECKS = {"accuracy_matches_reference", "accuracy_in_chunks",
                   "accuracy_returns_float", "accuracy_keeps_mode"}
BATCH_LOSS = "loss = loss_fn(model(x_train[batch]), y_train[batch])"
ORPHAN = (  # a grandchild in a session of its own, parented to nobody once its parent exits
    "class Orphan:\n    import os, time\n    if os.fork() == 0:\n        os.setsid()\n"
    "        if os.fork() == 0:\n            with open(os.environ.get('ORPHAN_PID_FILE', "
    "'orphan.pid'), 'w') as f:\n                f.write(str(os.getpid()))\n"
    "            time.sleep(60)\n        os._exit(0)\n\n\n")
LOOKUP_MODEL = (  # recognises each exact test image and answers its label (autograder's data)
    "class MyModel(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.lin = nn.Linear(784, 10)\n        from autograder.lessons.common.datacache import mnist\n"
    "        d = mnist()\n        g = torch.Generator().manual_seed(1)\n"
    "        self.register_buffer('r', torch.randn(784, 1, generator=g))\n"
    "        self.register_buffer('H', d['x_test'].reshape(-1, 784) @ self.r)\n"
    "        self.register_buffer('Y', d['y_test'].clone())\n\n"
    "    def forward(self, x):\n        x = x.reshape(len(x), -1)\n"
    "        best = ((x @ self.r) - self.H.reshape(1, -1)).abs().min(dim=1)\n"
    "        onehot = nn.functional.one_hot(self.Y[best.indices], 10).float() * 20\n"
    "        return torch.where((best.values < 1e-3).reshape(-1, 1), onehot, self.lin(x))\n")
NOOP_FIT = ("def fit(model, x_train, y_train, x_test, y_test, epochs=EPOCHS,\n"
            "        batch_size=BATCH_SIZE):\n    history = History()\n    for _ in range(epochs):\n"
            "        history.record(loss=1.0, accuracy=0.5, val_loss=1.0, val_accuracy=0.5)\n"
            "    return history\n\n\ndef unused_fit(")
SPIN_WHEN_EXPORTED = (  # a graph that would loop forever on the grader's images
    "        if torch.compiler.is_exporting():\n            while bool(x[0, 0] >= 0.0):\n"
    "                x = x + 0\n")
SHORT = {"time_s": 6.0, "memory_mb": 2000}   # adversarial cases need not wait 20 s
TIGHT = {"time_s": 4.0, "memory_mb": 2000}   # a huge network: the training probe gets 12 s

VARIANTS = [
    # ------------------------------------------------------------------ correct
    Variant("reference", "correct", [], hidden=True),
    Variant("wider_deeper", "correct", [
        ("nn.Linear(784, 128)", "nn.Linear(784, 256)"),
        (INIT_END, "        self.more = nn.Linear(256, 128)\n" + INIT_END),
        (RELU, "        x = torch.relu(self.hidden(x))\n        x = torch.relu(self.more(x))\n")],
        hidden=True),
    Variant("dropout", "correct", [
        (INIT_END, INIT_END + "        self.drop = nn.Dropout(0.2)\n"),
        (RELU, RELU + "        x = self.drop(x)\n")], hidden=True),
    Variant("batchnorm", "correct", [
        (INIT_END, INIT_END + "        self.norm = nn.BatchNorm1d(128)\n"),
        (RELU, "        x = torch.relu(self.norm(self.hidden(x)))\n")], hidden=True),
    Variant("sequential_flatten", "correct", [
        (MODEL_CLASS, "class MyModel(nn.Sequential):\n    def __init__(self):\n"
                      "        super().__init__(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),\n"
                      "                         nn.Linear(128, 10))\n")], hidden=True),
    Variant("log_softmax", "correct", [
        (FORWARD_END, "        return torch.log_softmax(self.out(x), dim=1)\n")], hidden=True),
    Variant("sgd_momentum", "correct", [
        (ADAM, "torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)")], hidden=True),
    Variant("dataloader", "correct", [
        (SHUFFLE + BATCHES + "            batch = permutation[i:i + batch_size]\n",
         "        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset("
         "x_train, y_train), batch_size=batch_size, shuffle=True)\n"
         "        for xb, yb in loader:\n"),
        ("loss = loss_fn(model(x_train[batch]), y_train[batch])",
         "loss = loss_fn(model(xb), yb)")], hidden=True),
    Variant("global_device", "correct", [
        (TOP, TOP + "from shared.device import pick_device\ndevice = pick_device()\n"),
        (ACC_CHUNK, ACC_CHUNK.replace("model(x[i:i + chunk])", "model(x[i:i + chunk].to(device))"))]),
    Variant("missing_import", "correct", [(TOP, TOP + "import seaborn_is_not_installed\n")]),
    Variant("batches_over_255", "correct", [
        (BATCH_LOSS, BATCH_LOSS.replace("x_train[batch]", "x_train[batch] / 255"))]),
    Variant("relu_inplace", "correct", [  # the torchvision idiom, on a fresh intermediate
        (RELU, "        x = nn.functional.relu(self.hidden(x), inplace=True)\n")]),
    Variant("batches_standardised", "correct", [
        (BATCH_LOSS, BATCH_LOSS.replace("x_train[batch]", "(x_train[batch] - 0.1307) / 0.3081"))]),
    # ------------------------------------------------------------------ buggy: model
    Variant("softmax_dim0", "buggy", [
        (FORWARD_END, "        return torch.softmax(self.out(x), dim=0)\n")],
        {"batch_independence"}, {"batch_independence": "dim=0"}, hidden=False),
    Variant("softmax_dim1", "buggy", [
        (FORWARD_END, "        return torch.softmax(self.out(x), dim=1)\n")],
        {"logits_not_probabilities"}, {"logits_not_probabilities": "remove the final softmax"}),
    Variant("view_hardcoded", "buggy", [(FLATTEN, "        x = x.view(64, 784)\n")],
            {"output_shape"}, {"output_shape": "fixed batch size"}, hidden=False),
    Variant("detach_forward", "buggy", [(RELU, "        x = torch.relu(self.hidden(x)).detach()\n")],
            {"gradients_reach_all_parameters"}, {"gradients_reach_all_parameters": "hidden.weight"}),
    Variant("unused_layer", "buggy", [(INIT_END, INIT_END + "        self.extra = nn.Linear(10, 10)\n")],
            {"gradients_reach_all_parameters"}, {"gradients_reach_all_parameters": "never used"}),
    Variant("zeroed_layer", "buggy", [(RELU, "        x = torch.relu(self.hidden(x)) * 0\n")],
            {"gradients_reach_all_parameters"}, {"gradients_reach_all_parameters": "exactly zero"}),
    Variant("scaled_logits", "buggy", [(FORWARD_END, "        return 100 * self.out(x)\n")],
            {"initial_loss"}, {"initial_loss": "ln 10"}),
    # a non-linearity after the last layer: the logits cannot be negative
    Variant("relu_on_logits", "buggy", [(FORWARD_END, "        return torch.relu(self.out(x))\n")],
            {"logits_not_probabilities"}, {"logits_not_probabilities": "ends with a ReLU"},
            hidden=False),
    Variant("sigmoid_on_logits", "buggy", [
        (FORWARD_END, "        return torch.sigmoid(self.out(x))\n")],
        {"logits_not_probabilities"}, {"logits_not_probabilities": "ends with a sigmoid"}),
    Variant("nan_on_blank", "buggy", [(FLATTEN, FLATTEN + "        x = x / x.amax(dim=1, keepdim=True)\n")],
            {"finite_outputs"}, {"finite_outputs": "blank"}),
    Variant("linear_model", "buggy", [(RELU, "        x = self.hidden(x)\n")], hidden=False),
    # ------------------------------------------------------------------ buggy: fit
    Variant("missing_zero_grad", "buggy", [(ZERO_GRAD, "")],
            {"fit_zero_grad"}, {"fit_zero_grad": "zero_grad"}),
    Variant("missing_step", "buggy", [(STEP_LOOP, "")],
            {"fit_step_count", "fit_loss_decreases"},
            {"fit_step_count": "0 optimizer steps", "fit_loss_decreases": "optimizer.step()"}),
    Variant("wrong_parameters", "buggy", [(ADAM, ADAM.replace("model.", "MyModel()."))],
            {"fit_loss_decreases", "fit_zero_grad", "fit_step_count"},
            {"fit_loss_decreases": "not the model's", "fit_step_count": "never changed"}),
    Variant("labels_in_order", "buggy", [
        (BATCH_LOSS, "loss = loss_fn(model(x_train[batch]), y_train[i:i + batch_size])")],
        {"fit_loss_decreases"}, {"fit_loss_decreases": "labels came in their original order"}),
    Variant("learning_rate_too_high", "buggy", [(ADAM, ADAM.replace("LEARNING_RATE", "5.0"))],
            {"fit_loss_decreases"}, {"fit_loss_decreases": "learning rate is too high"}),
    Variant("dropped_last_batch", "buggy", [
        (BATCHES, "        for i in range(0, len(x_train) - batch_size + 1, batch_size):\n")],
        {"fit_visits_every_sample", "fit_step_count"},
        {"fit_visits_every_sample": "last, partial batch"}),
    Variant("no_shuffle", "buggy", [(SHUFFLE, "        permutation = torch.arange(len(x_train))\n")],
            {"fit_reshuffles"}, {"fit_reshuffles": "original order"}),
    Variant("shuffle_once", "buggy", [(SHUFFLE, ""), (FIT_HEAD, FIT_HEAD + SHUFFLE.replace("    ", "", 1))],
            {"fit_reshuffles"}, {"fit_reshuffles": "same order"}),
    Variant("batch_size_constant", "buggy", [
        (BATCHES + "            batch = permutation[i:i + batch_size]\n",
         BATCHES.replace("batch_size", "BATCH_SIZE")
         + "            batch = permutation[i:i + BATCH_SIZE]\n")],
        {"fit_step_count"}, {"fit_step_count": "not the constant"}),
    Variant("fit_returns_none", "buggy", [("    return history\n", "    return None\n")],
            {"fit_returns_history"}, {"fit_returns_history": "returned None"}),
    # ------------------------------------------------------------------ buggy: accuracy
    # raises on every case of more than 10 samples: no value, so no evidence of chunks or mode
    Variant("argmax_dim0", "buggy", [(ACC_CHUNK, ACC_CHUNK.replace("dim=1", "dim=0"))],
            ACCURACY_CHECKS, {"accuracy_matches_reference": "dim=1",
                              "accuracy_in_chunks": "dim=1", "accuracy_keeps_mode": "dim=1"}),
    Variant("accuracy_count", "buggy", [(ACC_RETURN, "    return correct\n")],
            {"accuracy_matches_reference", "accuracy_returns_float"},
            {"accuracy_matches_reference": "number of correct"}),
    Variant("accuracy_tensor", "buggy", [(ACC_CHUNK, ACC_CHUNK.replace(".sum().item()", ".sum()"))],
            {"accuracy_returns_float"}, {"accuracy_returns_float": "Tensor"}),
    Variant("accuracy_all_at_once", "buggy", [
        ("def accuracy(model, x, y, chunk=1000):\n", "def accuracy(model, x, y, chunk=100000):\n")],
        {"accuracy_in_chunks"}, {"accuracy_in_chunks": "in chunks"}),
    Variant("fit_in_eval_mode", "buggy", [("        model.train()\n", "")],
            {"fit_loss_decreases"}, {"fit_loss_decreases": "model.train()"}),
    Variant("accuracy_no_eval", "buggy", [(ACC_EVAL, "    correct = 0\n")],
            {"accuracy_keeps_mode"}, {"accuracy_keeps_mode": "model.eval()"}),
    Variant("accuracy_no_restore", "buggy", [(ACC_RESTORE, "    return correct / len(x)\n")],
            {"accuracy_keeps_mode"}, {"accuracy_keeps_mode": "was_training"}),
    # ------------------------------------------------------------------ broken files
    Variant("syntax_error", "buggy", [(ACC_RETURN, "    return correct / len(x))\n")],
            ACCURACY_CHECKS, {"accuracy_matches_reference": "syntax error at line"}),
    Variant("accuracy_missing", "buggy", [("def accuracy(", "def my_accuracy(")],
            ACCURACY_CHECKS, {"accuracy_returns_float": "accuracy is not defined"}),
    Variant("gaps_unfilled", "buggy", [
        ("    def forward(self, x):\n", "    def forward(self, x):\n        raise NotImplementedError()\n"),
        (BATCHES, "        raise NotImplementedError()\n" + BATCHES),
        ("def accuracy(model, x, y, chunk=1000):\n",
         "def accuracy(model, x, y, chunk=1000):\n    raise NotImplementedError()\n")],
        MODEL_CHECKS | FIT_CHECKS | ACCURACY_CHECKS,
        {"output_shape": "gap 1 is not filled", "fit_zero_grad": "gap 2 is not filled",
         "accuracy_keeps_mode": "gap 3 is not filled"}),
    # ------------------------------------------------------------------ adversarial
    Variant("endless_forward", "adversarial", [(FORWARD_END, "        while True:\n            pass\n")],
            MODEL_CHECKS, {"output_shape": "too slow"}, limits=SHORT),
    Variant("huge_network", "adversarial", [
        ("nn.Linear(784, 128)", "nn.Linear(784, 20000)"), ("nn.Linear(128, 10)", "nn.Linear(20000, 10)")],
        MODEL_CHECKS, {"finite_outputs": "at most 1,000,000"}, hidden=False, limits=TIGHT),
    Variant("endless_fit", "adversarial", [(BATCHES, "        while True:\n            pass\n" + BATCHES)],
            FIT_CHECKS, {"fit_step_count": "too slow"}, limits=SHORT),
    Variant("memory_bomb", "adversarial", [
        ("def accuracy(model, x, y, chunk=1000):\n",
         "def accuracy(model, x, y, chunk=1000):\n    hoard = []\n    while True:\n"
         "        hoard.append(torch.ones(2 ** 24))\n")],
        ACCURACY_CHECKS, {"accuracy_keeps_mode": "memory"}, limits=SHORT),
    Variant("sys_exit", "adversarial", [(BATCHES, "        import sys\n        sys.exit(3)\n" + BATCHES)],
            FIT_CHECKS, {"fit_returns_history": "sys.exit"}, limits=SHORT),
    Variant("os_exit", "adversarial", [
        ("        super().__init__()\n", "        super().__init__()\n        import os\n"
                                        "        os._exit(7)\n")],
        MODEL_CHECKS, {"output_shape": "exit code 7"}, limits=SHORT),
    Variant("segfault", "adversarial", [
        ("def accuracy(model, x, y, chunk=1000):\n",
         "def accuracy(model, x, y, chunk=1000):\n    import ctypes\n    ctypes.string_at(0)\n")],
        ACCURACY_CHECKS, {"accuracy_matches_reference": "SIGSEGV"}, limits=SHORT),
    Variant("output_flood", "adversarial", [
        ("def accuracy(model, x, y, chunk=1000):\n",
         "def accuracy(model, x, y, chunk=1000):\n    for _ in range(300):\n"
         "        print('flood ' * 10000)\n")], limits=SHORT),
    Variant("fake_success_lines", "adversarial", [
        (RELU, "        x = self.hidden(x)\n"),
        (FIT_HEAD, FIT_HEAD + "    print('✓ min_test_accuracy [5/5] 99.9 %')\n"
                              "    print('{\"score\": 25, \"max_score\": 25}')\n")],
        hidden=False),
    Variant("patch_torch", "adversarial", [
        (RELU, "        x = self.hidden(x)\n"),
        (TOP, TOP + "CHEAT = setattr(torch.Tensor, '__eq__', "
                    "lambda a, b: torch.ones(a.shape, dtype=torch.bool))\n")],
        None, hidden=False),
    Variant("patch_pytest", "adversarial", [
        (BATCHES, "        for i in range(0, len(x_train) - batch_size + 1, batch_size):\n"),
        (TOP, TOP + "import pytest\nPASS_ALL = setattr(pytest, 'fail', lambda *a, **k: None)\n")],
        {"fit_visits_every_sample", "fit_step_count"}),
    Variant("fake_results_file", "adversarial", [
        (TOP, TOP + "import os\nFAKE = open(os.environ.get('FAKE_RESULTS', 'results.json'), 'w')"
                    ".write('{\"score\": 999}')\n"),
        (SHUFFLE, "        permutation = torch.arange(len(x_train))\n")],
        {"fit_reshuffles"}),
    Variant("forged_reply", "adversarial", [
        ("def accuracy(model, x, y, chunk=1000):\n",
         "def accuracy(model, x, y, chunk=1000):\n    import os, sys\n"
         "    os.write(int(sys.argv[2]), b'AGF1' + bytes(8) + b'forged')\n")],
        ACCURACY_CHECKS, limits=SHORT),
    Variant("orphan_process", "adversarial", [(MODEL_CLASS, ORPHAN + MODEL_CLASS)], limits=SHORT),
    Variant("lookup_test_set", "adversarial", [(MODEL_CLASS, LOOKUP_MODEL), ("def fit(", NOOP_FIT)],
            None, hidden=False),
    Variant("lookup_test_set_trained", "adversarial", [(MODEL_CLASS, LOOKUP_MODEL)],
            None, hidden=False),
    Variant("hang_grader", "adversarial", [
        (FLATTEN, FLATTEN + SPIN_WHEN_EXPORTED)], MODEL_CHECKS,
        says={"output_shape": "could not follow your forward",
              "min_test_accuracy": "could not follow your trained model's forward"},
        hidden=False, limits=SHORT),
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
