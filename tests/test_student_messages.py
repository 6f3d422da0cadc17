"""What a check tells a student who made a common mistake (issue 19, items 2 and 4): the order
of the training step, a shape error in the words of the lesson, an accuracy above 1.

Most submissions are graded live (grade_namespace: the probes run here, as in a student's
kernel, a second each); one goes through the jail, whose evidence travels as plain data.
"""
import sys
import types

import pytest

from autograder.engine.explain import Context, plain_words
from autograder.engine.grading import grade, grade_namespace
from submissions.catalogue import ACC_CHUNK, ADAM, FLATTEN, STEP_LOOP, ZERO_GRAD, render

BACKWARD_STEP = "            loss.backward()\n" + STEP_LOOP
EDITS = {
    "step_before_backward": [(BACKWARD_STEP, STEP_LOOP + "            loss.backward()\n")],
    "zero_grad_between": [(ZERO_GRAD, ""),
                          (BACKWARD_STEP, "            loss.backward()\n" + ZERO_GRAD + STEP_LOOP)],
    "wrong_parameters": [(ADAM, ADAM.replace("model.", "MyModel()."))],
    "not_flattened": [(FLATTEN, "")],
    "flattened_when_3d_only": [(FLATTEN, "        if x.dim() == 3:\n"
                                         "            x = x.flatten(start_dim=1)\n")],
    "wrong_in_features": [("nn.Linear(128, 10)", "nn.Linear(100, 10)")],
    "accuracy_broadcast": [(ACC_CHUNK, ACC_CHUNK.replace("argmax(dim=1)",
                                                         "argmax(dim=1, keepdim=True)"))],
}


def source(name: str) -> str:
    """The catalogue's reference definitions (no top-level training) with this case's edits."""
    text = render("reference").split("# %%\nmodel = MyModel()")[0]
    for old, new in EDITS[name]:
        assert text.count(old) == 1, (name, old)
        text = text.replace(old, new)
    return text


def live(name: str, group: str) -> dict:
    """check id -> message of `group`'s checks, the definitions run here as a notebook's."""
    # A real module registered as __main__, as a kernel's namespace is: torch.export looks up
    # the globals of forward through sys.modules['__main__'] (here pytest's own).
    module, saved = types.ModuleType("__main__"), sys.modules["__main__"]
    sys.modules["__main__"] = module
    try:
        exec(compile(source(name), f"{name}.py", "exec"), module.__dict__)
        return {r.check.id: " ".join(r.message.split()) for r in
                grade_namespace(vars(module), "01_mnist_dnn", group).results if not r.passed}
    finally:
        sys.modules["__main__"] = saved


ORDER = "zero_grad → forward → loss → backward → step, in that order"


@pytest.mark.parametrize("name, phrase", [
    ("step_before_backward", "it ran before loss.backward(), when the batch's gradients did "
                             "not exist yet"),
    ("zero_grad_between", "optimizer.zero_grad() ran between loss.backward() and "
                          "optimizer.step() and erased them"),
])
def test_a_step_in_the_wrong_place_is_told_the_order(name, phrase):
    failed = live(name, "fit")
    assert set(failed) == {"fit_loss_decreases", "fit_step_count"}, failed
    for message in failed.values():
        assert phrase in message and ORDER in message, message
        assert "not the model's" not in message  # what it was told before


def test_an_optimizer_over_other_parameters_is_still_told_so():
    failed = live("wrong_parameters", "fit")
    assert "the optimizer holds parameters that are not the model's" in failed[
        "fit_loss_decreases"]
    assert ORDER not in failed["fit_loss_decreases"]


def test_the_order_is_named_from_the_jail_too(tmp_path):
    """The step's circumstances cross the jail's wire as plain data."""
    path = tmp_path / "step_before_backward.py"
    path.write_text(source("step_before_backward"))
    report = grade(path, "01_mnist_dnn", only="fit_loss_decreases")
    message = " ".join(report.results[0].message.split())
    assert not report.results[0].passed and "ran before loss.backward()" in message, message


@pytest.mark.parametrize("name, phrase", [
    ("not_flattened", "an nn.Linear(784, 128) (or another matrix product) received inputs of "
                      "28 values in their last dimension, where it takes 784"),
    ("flattened_when_3d_only", "for (B, 1, 28, 28) inputs the grader could not follow your "
                               "forward"),
])
def test_images_not_flattened_are_told_to_flatten_every_dimension_but_the_first(name, phrase):
    message = live(name, "model")["output_shape"]
    assert phrase in message, message
    assert "flatten every dimension but the first, x.flatten(start_dim=1)" in message, message
    if name == "not_flattened":  # the meaning first, PyTorch's words after it
        assert message.index("received inputs") < message.index("RuntimeError")


def test_layers_whose_sizes_do_not_follow_are_told_so():
    message = live("wrong_in_features", "model")["output_shape"]
    assert "received inputs of 128 values in their last dimension, where it takes 100" in message
    assert "then the out_features of the layer before it" in message
    assert "flatten" not in message  # the images were flattened


def test_plain_words_read_both_forms_of_pytorchs_shape_error():
    eager = "mat1 and mat2 shapes cannot be multiplied (1792x28 and 784x128)"
    exported = "a and b must have same reduction dim, but got [28*s0, 28] X [784, 128]."
    for message in (eager, exported):
        assert "nn.Linear(784, 128)" in plain_words(message)
        assert "inputs of 28 values" in plain_words(message)
    assert plain_words("CUDA out of memory") is None
    text = Context().error_text({"type": "RuntimeError", "message": eager,
                                 "frames": [{"line": 7, "function": "MyModel.forward"}]})
    assert text.startswith("an nn.Linear(784, 128)") and \
        "(at line 7, in MyModel.forward; RuntimeError: mat1 and mat2" in text


def test_an_accuracy_above_one_is_explained_by_broadcasting():
    failed = live("accuracy_broadcast", "accuracy")
    message = failed["accuracy_matches_reference"]
    assert "more than 1, which a fraction of correct predictions never is" in message
    assert "(B, B) table" in message and "keepdim=True" in message
    assert "a float above 1" in failed["accuracy_returns_float"]
