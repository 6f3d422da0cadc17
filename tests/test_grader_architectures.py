"""Verdicts right on every architecture: the model checks on a matrix of architectures × bugs.

Each architecture is built with a last step ("head") applied to its logits: none (correct), or
one of the lesson's classic bugs. The intended check must fail with its message and every other
model check must pass. The probes run here, in the test's process, as in a notebook's
self-check (no sandbox: these models are the test's own code): the model is exported, the
exported program checked and run, and the grader's judges decide.
"""
import pytest
import torch
from torch import nn

from autograder.engine.grading import grade_namespace


def seed_mlp():  # the lesson's own architecture: 784-100-100-10
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100),
                         nn.ReLU(), nn.Linear(100, 10))


ARCHITECTURES = {
    "seed_784_100_100_10": seed_mlp,
    "one_hidden_layer": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(),
                                              nn.Linear(64, 10)),
    "wide": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(),
                                  nn.Linear(1024, 10)),
    "deep_tanh": lambda: nn.Sequential(nn.Flatten(), *[m for i in range(5) for m in (
        nn.Linear(784 if i == 0 else 64, 64), nn.Tanh())], nn.Linear(64, 10)),
    "dropout": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                                     nn.Dropout(0.3), nn.Linear(128, 10)),
    "batch_norm": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.BatchNorm1d(128),
                                        nn.ReLU(), nn.Linear(128, 10)),
    "small_cnn": lambda: nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 8, 3),
                                       nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                       nn.Linear(8 * 13 * 13, 10)),
    # the torchvision idiom: an in-place ReLU on a fresh intermediate changes no input
    "inplace_relu": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 128),
                                          nn.ReLU(inplace=True), nn.Linear(128, 10)),
}

HEADS = {  # bug -> (last step, the check it must fail, a phrase of its message)
    "correct": (lambda z: z, None, None),
    "softmax_dim0": (lambda z: torch.softmax(z, dim=0), "batch_independence", "dim=0"),
    "log_softmax_dim0": (lambda z: torch.log_softmax(z, dim=0), "batch_independence", "dim=0"),
    "softmax_dim1": (lambda z: torch.softmax(z, dim=1), "logits_not_probabilities",
                     "remove the final softmax"),
    "scaled_logits": (lambda z: 100 * z, "initial_loss", "ln 10"),
    # a non-linearity after the last layer: the logits cannot be negative (or large)
    "relu_on_logits": (torch.relu, "logits_not_probabilities", "ends with a ReLU"),
    "relu_on_logits_reshaped": (lambda z: torch.relu(z).reshape(len(z), 10),
                                "logits_not_probabilities", "ends with a ReLU"),
    "sigmoid_on_logits": (torch.sigmoid, "logits_not_probabilities", "ends with a sigmoid"),
    "tanh_on_logits": (torch.tanh, "logits_not_probabilities", "ends with a tanh"),
    "relu_plus_zero": (lambda z: torch.relu(z) + 0.0, "logits_not_probabilities", "a ReLU"),
}


def model_class(architecture, head):
    class MyModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ARCHITECTURES[architecture]()

        def forward(self, x):
            return HEADS[head][0](self.body(x.reshape(len(x), 784)))  # (B, 10)

    return MyModel


def model_checks(architecture: str, head: str) -> dict:
    report = grade_namespace({"MyModel": model_class(architecture, head)}, "01_mnist_dnn",
                             only="model")
    return {r.check.id: r for r in report.results}


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_intended_model_check_fails_and_only_it(architecture, head):
    results = model_checks(architecture, head)
    _, intended, phrase = HEADS[head]
    failed = {cid for cid, r in results.items() if not r.passed}
    assert failed == ({intended} if intended else set()), {
        cid: r.message for cid, r in results.items() if not r.passed}
    if intended:
        assert phrase in results[intended].message, results[intended].message


def test_the_seed_softmax_dim0_model_fails_batch_independence_by_a_wide_margin():
    result = model_checks("seed_784_100_100_10", "softmax_dim0")["batch_independence"]
    assert not result.passed  # outputs ~1/64 change by ~1e-4: an absolute 1e-4 let it pass
    assert result.details["max_change"] > 1e-5


def test_a_zero_initialised_model_is_told_its_initialisation():
    class MyModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = seed_mlp()
            for layer in self.body:
                if isinstance(layer, nn.Linear):
                    nn.init.zeros_(layer.weight)

        def forward(self, x):
            return self.body(x.reshape(len(x), 784))

    report = grade_namespace({"MyModel": MyModel}, "01_mnist_dnn", only="model")
    failed = {r.check.id: r.message for r in report.results if not r.passed}
    assert set(failed) == {"gradients_reach_all_parameters"}, failed
    message = failed["gradients_reach_all_parameters"]
    assert "zero or constant initialisation" in message and "body.1.weight" in message, message
    assert "ReLU" not in message
