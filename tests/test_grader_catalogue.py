"""The grader against its catalogue (tests/submissions/catalogue.py): every buggy submission
fails exactly its intended checks with its specific message, every correct variant passes
everything, and adversarial submissions are contained.

The whole catalogue is graded once, two submissions at a time (~3 min on two cores).
"""

import pytest

from autograder.engine.grading import grade
from submissions.catalogue import VARIANTS, write
from submissions.grading import grade_variants, messages

NAMES = [v.name for v in VARIANTS]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_variants(VARIANTS, write, tmp_path_factory.mktemp("catalogue"))


@pytest.mark.parametrize("variant", VARIANTS, ids=NAMES)
def test_fails_exactly_its_intended_checks(graded, variant):
    report = graded[variant.name]
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
    assert report.score == report.max_score == 25, messages(report)


def test_a_relu_on_the_logits_is_named_where_the_hidden_check_fails(graded):
    """The hidden check told it "use a hidden layer with ReLU", the opposite of the fix."""
    result = next(r for r in graded["relu_on_logits"].results if r.check.hidden)
    assert not result.passed
    assert "logits_not_probabilities" in result.public_message(), result.public_message()


def test_a_crash_fails_only_its_probe_then_a_fresh_child_continues(graded):
    report = graded["os_exit"]  # MyModel() ends the process; fit and accuracy still graded
    assert {r.check.group for r in report.results if r.passed} == {"fit", "accuracy"}


def test_printed_or_patched_success_gains_nothing(graded):
    for name in ("fake_success_lines", "patch_torch"):
        report = graded[name]
        assert report.score <= 20, messages(report)
        hidden = next(r for r in report.results if r.check.id == "min_test_accuracy")
        assert "test accuracy 9" in hidden.message  # measured by the grader: ~92 %, linear


def test_grading_twice_gives_the_same_report(graded, tmp_path):
    again = grade(write("reference", tmp_path))
    first = graded["reference"]

    def verdicts(report):  # the hidden check's noise is a new secret each time: not its text
        return [(r.check.id, r.passed, r.message if not r.check.hidden else "")
                for r in report.results]

    assert verdicts(again) == verdicts(first)
    assert again.score == first.score


def test_an_orphan_process_changes_no_verdict(graded):
    """Whether it survives is the jail's business (tests/test_grader_attacks.py)."""
    report = graded["orphan_process"]
    assert report.passed, messages(report)


def test_a_model_that_loops_only_while_exported_is_not_tested(graded):
    result = next(r for r in graded["hang_grader"].results if r.check.id == "min_test_accuracy")
    assert "could not follow your trained model's forward" in result.message
    assert graded["hang_grader"].seconds < 60


def test_a_test_set_lookup_gains_nothing(graded):
    for name in ("lookup_test_set", "lookup_test_set_trained"):
        result = next(r for r in graded[name].results if r.check.id == "min_test_accuracy")
        assert not result.passed, result.message
