"""The catalogue is data with the agreed ids and points; results and reports render from it.

Fast: nothing here starts a sandbox.
"""
import csv
import json

import pytest
import torch

from autograder.engine import report as reports
from autograder.engine.checks import CheckResult, UsageError
from autograder.engine.explain import Context
from autograder.engine.grading import Report
from autograder import lessons

L01 = lessons.get("01_mnist_dnn")

AGREED = {  # the team contract: ids, groups and points shared with nbgrader and self-checks
    "model": {"output_shape": 2, "batch_independence": 2, "logits_not_probabilities": 1,
              "gradients_reach_all_parameters": 1, "initial_loss": 1, "finite_outputs": 1},
    "fit": {"fit_returns_history": 1, "fit_loss_decreases": 2, "fit_visits_every_sample": 2,
            "fit_reshuffles": 1, "fit_step_count": 1, "fit_zero_grad": 1},
    "accuracy": {"accuracy_matches_reference": 1, "accuracy_in_chunks": 1,
                 "accuracy_returns_float": 1, "accuracy_keeps_mode": 1},
    "hidden": {"min_test_accuracy": 5},
}


def test_catalogue_has_the_agreed_ids_groups_and_points():
    found = {}
    for check in L01.checks:
        found.setdefault(check.group, {})[check.id] = check.points
    assert found == AGREED
    assert L01.max_score == 25


@pytest.mark.parametrize("group, points", [("model", 8), ("fit", 8), ("accuracy", 4),
                                           ("hidden", 5), ("fit_zero_grad", 1)])
def test_group_points(group, points):
    assert L01.group_points(group) == points


def test_only_min_test_accuracy_is_hidden():
    assert [c.id for c in L01.checks if c.hidden] == ["min_test_accuracy"]
    assert all(not c.hidden for c in L01.select(public_only=True))


def test_every_check_tells_the_student_something():
    for check in L01.checks:
        assert check.title and check.fail and check.success, check.id
        assert check.fail != check.success


def test_unknown_names_are_usage_errors():
    with pytest.raises(UsageError):
        L01.select("no_such_check")
    with pytest.raises(UsageError):
        lessons.get("99_unknown")


def results(passed_ids):
    return [CheckResult(c, c.id in passed_ids, f"message of {c.id}", {"n": 1})
            for c in L01.checks]


def make_report(passed_ids):
    return Report("01_mnist_dnn", "/x/alice.py", results(passed_ids), ["a note"], 1.0)


def test_result_summary_and_dict():
    output_shape, hidden = L01.checks[0], L01.checks[-1]
    ok = CheckResult(output_shape, True, "fine")
    assert ok.score == 2 and ok.summary().startswith("✓ output_shape [2/2]")
    assert ok.to_dict() == {"id": "output_shape", "title": output_shape.title, "group": "model",
                            "passed": True, "score": 2.0, "max_score": 2.0, "hidden": False,
                            "message": "fine", "details": {}, "seconds": 0.0}
    bad = CheckResult(hidden, False, "accuracy 91.2 % < 94 %", {"test_accuracy": 0.912})
    assert bad.summary().startswith("✗ min_test_accuracy (hidden) [0/5]")
    assert "91.2" in bad.summary() and "91.2" not in bad.summary(student=True)
    assert bad.to_dict(student=True)["message"] == hidden.fail
    assert "details" not in bad.to_dict(student=True)


def test_report_json_has_the_issue_fields(tmp_path):
    report = make_report({"output_shape"})
    reports.write_json(report, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert (data["lesson"], data["score"], data["max_score"]) == ("01_mnist_dnn", 2.0, 25.0)
    assert {"id", "title", "passed", "score", "max_score", "hidden", "message"} <= set(
        data["checks"][0])


def test_gradescope_hides_hidden_details():
    data = reports.gradescope(make_report(set()))
    assert data["score"] == 0 and len(data["tests"]) == len(L01.checks)
    hidden = [t for t in data["tests"] if t["name"].startswith("min_test_accuracy")][0]
    assert hidden["visibility"] == "after_published"
    assert hidden["output"] == L01.checks[-1].fail


def test_scorecard_lists_every_check_and_the_total():
    text = reports.scorecard(make_report({"output_shape", "initial_loss"}))
    assert text.count("✓") == 2 and text.count("✗") == len(L01.checks) - 2
    assert "score 3/25" in text and "note: a note" in text


def test_gradebook_has_one_column_per_check(tmp_path):
    rows = [reports.gradebook_row("bob", make_report({"output_shape"})),
            reports.gradebook_row("alice", error="could not grade: no file")]
    reports.write_gradebook(rows, tmp_path / "g.csv", "01_mnist_dnn")
    table = list(csv.DictReader(open(tmp_path / "g.csv")))
    assert [r["student"] for r in table] == ["alice", "bob"]
    assert table[0]["score"] == "" and table[0]["error"].startswith("could not grade")
    assert table[1]["output_shape"] == "2" and table[1]["fit_zero_grad"] == "0"  # one format
    assert set(table[0]) == {"student", "status", "score", "max_score", "error"} | {
        c.id for c in L01.checks}


def test_context_explains_gaps_missing_names_and_sandbox_failures():
    ctx = Context(gaps={"MyModel": 1}, what={"model": "building MyModel"},
                  dropped={"loss_fn": 40}, problems=[])
    gap = {"type": "NotImplementedError", "message": "",
           "frames": [{"line": 3, "function": "MyModel.forward"}]}
    assert "gap 1 is not filled yet" in ctx.error_text(gap)
    assert ctx.error_text({"type": "MissingName", "name": "fit"}) == (
        "fit is not defined: your submission must define fit")
    name_error = {"type": "NameError", "message": "name 'loss_fn' is not defined",
                  "name": "loss_fn", "frames": [{"line": 9, "function": "fit"}]}
    assert "top-level code the grader does not run (line 40)" in ctx.error_text(name_error)
    assert ctx.failure({"type": "Timeout", "limit": 20}, "model").startswith(
        "too slow: building MyModel did not finish within 20 s")
    assert "SIGSEGV" in ctx.failure({"type": "Crash", "signal": "SIGSEGV"}, "model")


@pytest.mark.parametrize("outcome", [
    {"ok": True, "data": {"forged": True}},
    {"ok": False, "error": {"type": "Timeout", "limit": "not a number"}},
    {"ok": False, "error": {"type": "Crash"}},
])
def test_judging_a_malformed_outcome_fails_the_check_not_the_grader(outcome):
    from autograder.engine.grading import judge

    result = judge(L01.checks[0], outcome, Context())
    assert not result.passed and result.message


# ----------------------------------------------------------------------------- lesson 01 judges

def test_the_fit_stamp_survives_affine_batch_transforms():
    import torch

    from autograder.lessons.common import fixtures as fx

    x, _ = fx.train_slice(fx.FIT_OFFSET, fx.FIT_N)
    batch = fx.stamp(x)[[3, 0, 249, 17]]
    for transform in (lambda t: t, lambda t: t / 255, lambda t: (t - t.mean()) / t.std(),
                      lambda t: (t.reshape(4, 1, 28, 28) - 0.1307) / 0.3081):
        assert fx.read_stamp(transform(batch)).tolist() == [3, 0, 249, 17]
    assert fx.read_stamp(x[:4]) is None  # unstamped images are not mistaken for stamped ones
    assert fx.read_stamp(torch.sqrt(batch)) is None


def test_the_hidden_images_come_from_the_secret_and_the_noise_is_small():
    from autograder.lessons.common import fixtures as fx

    one, again, other = fx.hidden_sets(1), fx.hidden_sets(1), fx.hidden_sets(2)
    assert torch.equal(one["test"][0], again["test"][0])
    assert not torch.equal(one["test"][1], other["test"][1])      # another order
    assert not torch.equal(one["train"][1], other["train"][1])    # other training images
    assert torch.equal(fx.hidden_labels(1)["test"], one["test"][1])
    noisy, labels = one["test"]
    clean = fx.mnist()["x_test"][fx._picks(1)[0]]
    assert torch.equal(fx.mnist()["y_test"][fx._picks(1)[0]], labels)
    assert not (noisy == clean).all() and (noisy - clean).abs().mean() < 0.02
    assert 0 <= noisy.min() and noisy.max() <= 1


def test_the_scored_training_images_are_among_those_the_model_was_trained_on():
    """Lesson 02's hidden check trains on the first 12,000 images: its "training images" are
    picked among them, not among 60,000 the model never saw."""
    from autograder.lessons.common import fixtures as fx

    _, picked = fx._picks(7, trained=12_000)
    assert len(picked) == fx.TRAIN_CHECK and int(picked.max()) < 12_000
    labels = fx.hidden_labels(7, 12_000)["train"]
    assert torch.equal(fx.hidden_sets(7, 12_000)["train"][1], labels)
    assert int(fx._picks(7)[1].max()) >= 12_000  # lesson 01 trains on all of them


def test_a_weak_models_chance_lead_on_the_test_set_is_not_called_recognising_it():
    """A correct CNN at 64 % on the test images and 62.4 % on its training images was told it
    recognised the test images (a fixed 1.5 %); the tolerance is 3 standard errors when that
    is more, and a real lead is still caught."""
    from autograder.lessons.common import fixtures as fx
    from autograder.lessons.common.hidden import _over_train_tolerance

    assert 0.6402 <= 0.6236 + _over_train_tolerance(0.6402, 0.6236)
    assert _over_train_tolerance(0.97, 0.97) == fx.TEST_OVER_TRAIN
    assert 0.99 > 0.63 + _over_train_tolerance(0.99, 0.63)
    assert 0.70 > 0.64 + _over_train_tolerance(0.70, 0.64)


SECRET = 12345


def hidden_data(test: float, train: float, changed: int = 4, agree: bool = True) -> dict:
    from autograder.lessons.common import fixtures as fx

    def predictions(labels, fraction):
        wrong = torch.arange(len(labels)) >= round(fraction * len(labels))
        return torch.where(wrong, (labels + 1) % 10, labels).to(torch.uint8)

    labels = fx.hidden_labels(SECRET)
    logits = torch.randn(fx.AGREE_N, 10)
    eager = logits if agree else logits + 0.5
    return {"parameters": 4, "changed": changed, "secret": SECRET,
            "eager": {"ok": True, "value": eager},
            "evaluation": {"ok": True, "seconds": 1.0,
                           "data": {"test": predictions(labels["test"], test),
                                    "train": predictions(labels["train"], train),
                                    "agree": logits}}}


@pytest.mark.parametrize("data, passed, phrase", [
    (hidden_data(0.97, 0.98), True, "test accuracy 97.00%"),
    (hidden_data(0.92, 0.93), False, "is below 94%"),
    (hidden_data(0.999, 0.92), False, "training images"),
    (hidden_data(0.99, 0.99, changed=0), False, "did not change"),
    (hidden_data(0.99, 0.99, agree=False), False, "other outputs"),
    ({"parameters": 4, "changed": 4, "export_error": "TypeError: x"}, False,
     "TypeError: x"),
    ({"parameters": 4, "changed": 4, "evaluation": {
        "ok": False, "seconds": 1.0,
        "error": {"type": "GraphRejected", "message": "uses aten::x"}}},
     False, "was not tested: uses aten::x"),
    ({"parameters": 4, "changed": 4,
      "evaluation": {"ok": False, "seconds": 6.0, "error": {"type": "Timeout", "limit": 6}}},
     False, "too slow: testing your trained model"),
])
def test_min_test_accuracy_judges_predictions_made_elsewhere(data, passed, phrase):
    from autograder.lessons.mnist_dnn import judges

    ctx = Context(what={"hidden_eval": "testing your trained model"})
    verdict = judges.min_test_accuracy(data, ctx)
    assert verdict.passed is passed and phrase in verdict.message, verdict.message
