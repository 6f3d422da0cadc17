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
from autograder.lessons.mnist_cnn import probes
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


def test_the_student_sees_the_hidden_accuracy_against_the_bar(graded):
    """A hidden check shows its verdict only, and here the accuracy it measured: a student who
    fails it knows by how much."""
    for name in ("reference", "adaptive_avg_pool"):
        result = next(r for r in graded[name].results if r.check.id == "min_test_accuracy")
        shown = result.public_message()
        accuracy, bar = result.details["test_accuracy"], result.details["threshold"]
        assert f"test accuracy {accuracy:.2%}, at least {bar * 100:g}% needed" in shown, shown
        assert result.check.success in shown  # the generic text stays


def test_a_fully_connected_network_fails_the_hidden_check_whatever_its_accuracy(graded):
    result = next(r for r in graded["mlp_behind_1x1_convolution"].results if r.check.hidden)
    assert not result.passed
    assert "runs no convolution whose kernel sees neighbouring pixels" in result.message
    assert result.details["unmet"] and result.details["test_accuracy"] > 0.8  # it learned


@pytest.mark.parametrize("name", ["size_no_plus_one", "size_ignores_stride", "size_numpy_floor",
                                  "size_true_division", "size_unfilled"])
def test_a_slip_in_gap_2_costs_gap_2s_points_only(graded, name):
    """MyCNN is built with the grader's conv_output_size: the model checks all pass, and say
    that the notebook's own MyCNN differs."""
    report = graded[name]
    lost = {r.check.group for r in report.results if not r.passed}
    assert lost == {"size"}, messages(report)
    assert report.score >= report.max_score - mnist_cnn.LESSON.group_points("size")
    shape = next(r for r in report.results if r.check.id == "output_shape")
    assert "gap 2" in shape.message, shape.message


def test_no_student_message_speaks_of_exporting(graded):
    """The grader's way of reading a model is not the student's concern."""
    said = [(name, r.check.id, r.public_message()) for name, report in graded.items()
            for r in report.results if "exported" in r.public_message()]
    assert not said, said


def test_points_per_gap():
    """The contract with nbgrader's grade cells: 25 points, each gap's group its own."""
    assert {group: mnist_cnn.LESSON.group_points(group) for group in mnist_cnn.LESSON.groups} \
        == {"conv": 3, "size": 3, "model": 12, "hidden": 7}
    assert mnist_cnn.LESSON.gaps == {"conv2d_by_hand": 1, "conv_output_size": 2, "MyCNN": 3}


def test_the_cases_of_the_two_computed_gaps_are_drawn_anew_each_grading():
    one, two = probes.conv_cases(1), probes.conv_cases(2)
    assert not all(torch.equal(a["x"], b["x"]) for a, b in zip(one[1:], two[1:]))
    shapes = [tuple(case["weight"].shape) for case in one]
    assert any(kh != kw for *_, kh, kw in shapes)  # non-square kernels among them
    assert len({c_in for _, c_in, _, _ in shapes}) > 1  # several input channels
    assert probes.size_cases(1) != probes.size_cases(2)
    assert {"conv", "size"} <= mnist_cnn.LESSON.secret


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
