"""accuracy's four points come from values the grader computes itself (issue 9, point 4).

Each accuracy below is this test's own code, so the probe runs here, in the test's process, as
in a notebook's self-check; the judges then decide from what it returned and the secret. Every
bug must lose exactly the points it deserves, and a forged result — values guessed without the
secret, or the old format's claims — earns nothing.

Fast: nothing here starts a sandbox.
"""
import secrets

import pytest
import torch

from autograder.engine.explain import Context
from autograder.engine.grading import judge
from autograder import lessons
from autograder.lessons.mnist_dnn import accuracy as acc

L01 = lessons.get("01_mnist_dnn")
CHECKS = {c.id: c for c in L01.select("accuracy")}


def reference(model, x, y, chunk_size=1000):
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), chunk_size):
            correct += (model(x[i:i + chunk_size]).argmax(dim=1) == y[i:i + chunk_size]).sum().item()
    model.train(was_training)
    return correct / len(x)


def variant(**bugs):
    """The reference accuracy with some of its steps left out or changed."""
    def accuracy(model, x, y, chunk_size=bugs.get("chunk", 1000)):
        was_training = model.training
        if not bugs.get("no_eval"):
            model.eval()
        correct = 0
        with torch.no_grad() if not bugs.get("no_no_grad") else torch.enable_grad():
            stop = len(x) - chunk_size + 1 if bugs.get("drop_last") else len(x)
            for i in range(0, max(stop, 0), chunk_size):
                hits = model(x[i:i + chunk_size]).argmax(dim=bugs.get("dim", 1)) == y[i:i + chunk_size]
                correct += hits.sum() if bugs.get("tensor") else hits.sum().item()
        if bugs.get("always_train"):
            model.train()
        elif not bugs.get("no_restore"):
            model.train(was_training)
        return correct if bugs.get("count") else correct / len(x)
    return accuracy


ALL = set(CHECKS)
VARIANTS = {  # name -> (accuracy, the checks it must fail, a phrase of each message)
    "reference": (reference, {}),
    "chunk_500": (variant(chunk=500), {}),
    "one_shot": (variant(chunk=100_000), {"accuracy_in_chunks": "in chunks of at most 1000"}),
    "count": (variant(count=True), {"accuracy_matches_reference": "number of correct",
                                    "accuracy_returns_float": "int"}),
    "tensor": (variant(tensor=True), {"accuracy_returns_float": ".item()"}),
    "no_eval": (variant(no_eval=True), {"accuracy_keeps_mode": "model.eval()"}),
    "no_no_grad": (variant(no_no_grad=True), {"accuracy_keeps_mode": "torch.no_grad()"}),
    "no_restore": (variant(no_restore=True), {"accuracy_keeps_mode": "was_training"}),
    "always_train": (variant(always_train=True), {"accuracy_keeps_mode": "switched a model"}),
    "drop_last_chunk": (variant(drop_last=True), {
        "accuracy_matches_reference": "last partial", "accuracy_returns_float": "not the right",
        "accuracy_keeps_mode": "make accuracy return the right value first"}),
    "argmax_dim0": (variant(dim=0), {
        "accuracy_matches_reference": "dim=1", "accuracy_in_chunks": "dim=1",
        "accuracy_returns_float": "dim=1", "accuracy_keeps_mode": "dim=1"}),
}


def results(accuracy, secret=None, data=None) -> dict:
    ctx = Context(gaps=L01.gaps, what=L01.what)
    secret = secrets.randbits(62) if secret is None else secret
    if data is None:
        data = acc.probe_accuracy({"accuracy": accuracy}, secret)
    outcome = {"ok": True, "data": dict(data, secret=secret), "seconds": 0.0}
    return {cid: judge(check, outcome, ctx) for cid, check in CHECKS.items()}


@pytest.mark.parametrize("name", VARIANTS)
def test_each_bug_loses_exactly_its_points_with_a_message_that_names_the_fix(name):
    accuracy, failing = VARIANTS[name]
    found = results(accuracy)
    assert {cid for cid, r in found.items() if not r.passed} == set(failing), {
        cid: r.message for cid, r in found.items()}
    for cid, phrase in failing.items():
        assert phrase in found[cid].message, found[cid].message


def test_the_catalogue_judges_accuracy_from_these_values_and_the_secret_is_drawn_per_grading():
    assert all(check.judge is getattr(acc, cid) for cid, check in CHECKS.items())
    assert L01.secret == {"accuracy"}


def test_a_one_shot_accuracy_with_the_right_value_loses_only_the_chunking_point():
    found = results(variant(chunk=100_000))
    assert found["accuracy_matches_reference"].passed
    assert [cid for cid, r in found.items() if not r.passed] == ["accuracy_in_chunks"]


def test_values_computed_for_another_secret_earn_nothing():
    """What a forger can send without running on this grading's cases: the right values of
    the cases it could build in advance (any secret but this one)."""
    forged = acc.probe_accuracy({"accuracy": reference}, secret=12345)
    found = results(None, secret=54321, data=forged)
    assert not any(r.passed for r in found.values()), {c: r.message for c, r in found.items()}


def test_claims_in_the_old_format_earn_nothing():
    ok = lambda value: {"ok": True, "value": value}
    value = {"type": "float", "is_float": True, "value": 0.7, "repr": "0.7", "batches": [10]}
    call = {"training": False, "grad": False, "batch": 10}
    old = {"cases": {"1237 samples": ok(value), "10 samples": ok(value)},
           "chunks": ok([10]),
           "mode": {m: ok({"value": value, "calls": [call], "training_after": m == "train"})
                    for m in ("train", "eval")}}
    found = results(None, data=old)
    assert not any(r.passed for r in found.values())


def test_without_the_grader_s_secret_nothing_is_judged():
    data = acc.probe_accuracy({"accuracy": reference}, secret=7)
    ctx = Context(gaps=L01.gaps, what=L01.what)
    for check in CHECKS.values():
        assert not judge(check, {"ok": True, "data": data, "seconds": 0.0}, ctx).passed


def test_the_cases_are_the_same_in_the_jail_and_in_the_grader():
    """Logits are exact (integer weights, binary images): chunking cannot move an argmax."""
    case = acc.build(99, "3000 samples", 3000, "value")
    whole = case.model(case.x).argmax(dim=1)
    parts = torch.cat([case.model(case.x[i:i + 7]).argmax(dim=1) for i in range(0, len(case.x), 7)])
    assert torch.equal(whole, parts)
    right, wrong = case.correct(0) / 3000, case.correct(1) / 3000
    assert right > 0.15 and wrong < 0.1 + right / 10


def test_a_guess_earns_nothing():
    """The values the cases can take: the likeliest guess for one secret is right for another
    only rarely, and every check needs several cases right."""
    values = [acc.cases(secret) for secret in range(40)]
    for name, n in {**acc.VALUE_CASES, **acc.CHUNK_CASES}.items():
        if n >= 100:
            counts = [c[name].correct(0) for c in values]
            assert max(counts.count(k) for k in counts) <= 3, (name, sorted(counts))
