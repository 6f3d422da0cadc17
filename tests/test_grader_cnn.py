"""Lesson 02's grader against its catalogue (tests/submissions/cnn_catalogue.py): every buggy
submission fails exactly its intended checks with its specific message, every correct variant
passes everything, in the real jail. The hidden check runs for a few variants only (it trains a
CNN on 60,000 images); the catalogue is graded two submissions at a time.
"""
import subprocess
import sys

import pytest
import torch
from torch import nn

from autograder.engine.checks import UsageError
from autograder.engine.grading import grade
from autograder.lessons import mnist_cnn
from autograder.lessons.common import graphs
from submissions.catalogue import write as write_lesson_01
from submissions.cnn_catalogue import VARIANTS, write
from submissions.grading import grade_variants, messages

NAMES = [v.name for v in VARIANTS]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, jail_isolation):
    return grade_variants(VARIANTS, write, tmp_path_factory.mktemp("cnn_catalogue"))


@pytest.mark.parametrize("variant", VARIANTS, ids=NAMES)
def test_fails_exactly_its_intended_checks(graded, variant):
    report = graded[variant.name]
    assert report.lesson == "02_mnist_cnn"
    public_failures = report.failed_ids() - {"min_test_accuracy"}
    if variant.fails is not None:
        assert public_failures == variant.fails, messages(report)
    for check_id, phrase in variant.says.items():
        result = next(r for r in report.results if r.check.id == check_id)
        assert phrase in result.message, result.message


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.hidden is not None],
                         ids=lambda v: v.name)
def test_minimum_test_accuracy(graded, variant):
    result = next(r for r in graded[variant.name].results if r.check.id == "min_test_accuracy")
    assert result.passed is variant.hidden, result.message


def test_reference_gets_full_marks(graded):
    report = graded["reference"]
    assert report.score == report.max_score == mnist_cnn.LESSON.max_score, messages(report)


def test_the_hidden_threshold_is_the_lesson_records(graded):
    result = next(r for r in graded["reference"].results if r.check.id == "min_test_accuracy")
    assert result.details["threshold"] == mnist_cnn.LESSON.thresholds["min_test_accuracy"]
    assert result.details["test_accuracy"] >= result.details["threshold"]


def test_a_lesson_01_notebook_is_refused_as_lesson_02(tmp_path):
    path = write_lesson_01("reference", tmp_path)
    with pytest.raises(UsageError, match="is a notebook of lesson 01_mnist_dnn, not of lesson "
                                         "02_mnist_cnn"):
        grade(path, lesson="02_mnist_cnn")


def test_the_cli_refuses_a_lesson_01_notebook_as_lesson_02(tmp_path):
    path = write_lesson_01("reference", tmp_path)
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--lesson",
                           "02_mnist_cnn"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is a notebook of lesson 01_mnist_dnn, not of lesson 02_mnist_cnn" in done.stderr


CNN_LAYERS = {  # what an honest CNN may use, exported after model.eval()
    "dropout2d": lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout2d(0.2), nn.Flatten(),
                                       nn.Linear(4 * 26 * 26, 10)),
    "alpha_dropout": lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.AlphaDropout(0.1),
                                           nn.Flatten(), nn.Linear(4 * 26 * 26, 10)),
    "batch_norm_adaptive_max": lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4),
                                                     nn.ReLU(), nn.AdaptiveMaxPool2d(4),
                                                     nn.Flatten(), nn.Linear(64, 10)),
    "group_norm_avg_pool": lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4),
                                                 nn.SiLU(), nn.AvgPool2d(2), nn.Flatten(),
                                                 nn.Linear(4 * 14 * 14, 10)),
}


@pytest.mark.parametrize("layers", CNN_LAYERS)
def test_the_allow_list_takes_what_a_cnn_needs_in_eval_mode(layers):
    model = CNN_LAYERS[layers]().eval()
    exported = graphs.export(model, torch.rand(8, 1, 28, 28))
    assert "blob" in exported, exported
    program = graphs.load(exported["blob"].numpy().tobytes(), mnist_cnn.LESSON.budgets["numbers"])
    assert tuple(program(torch.rand(3, 1, 28, 28)).shape) == (3, 10)


@pytest.mark.parametrize("op", ["dropout", "feature_dropout", "alpha_dropout"])
def test_dropout_in_training_mode_is_refused_however_its_flag_is_passed(op):
    with pytest.raises(graphs.GraphRejected, match="training mode"):
        graphs.resolve(f"aten::{op}.default", (None, 0.5, True), {})
    with pytest.raises(graphs.GraphRejected, match="training mode"):
        graphs.resolve(f"aten::{op}.default", (None, 0.5), {"train": True})
    assert graphs.resolve(f"aten::{op}.default", (None, 0.5, False), {}) is not None
