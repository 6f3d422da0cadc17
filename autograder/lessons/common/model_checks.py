"""The model checks both lessons share, as data: each lesson's catalogue takes them from here
with its own judge (bound to its model class and layouts), names and points, so that a student
reads the same words for the same fault in every lesson."""
from autograder.engine.checks import Check

# id -> (title, fail, success)
TEXTS = {
    "batch_independence": (
        "one image's output does not depend on the rest of the batch",
        "outputs depend on the other images of the batch: never normalise over dim=0",
        "each image's output is independent of the other images in the batch"),
    "logits_not_probabilities": (
        "forward returns logits: no softmax, sigmoid or ReLU after the last layer",
        "each output row sums to 1, so forward returns probabilities: remove the final "
        "softmax — nn.CrossEntropyLoss applies (log-)softmax itself",
        "forward returns logits, free to take any value"),
    "output_depends_on_the_image": (
        "different images give different outputs",
        "your model gives the same output for every image",
        "the outputs change with the image"),
    "gradients_reach_all_parameters": (
        "every parameter receives a non-zero gradient",
        "some parameters receive no gradient (or only zeros): remove .detach()/.data from "
        "forward and use every layer you define",
        "a non-zero loss gradient reaches every parameter"),
    "initial_loss": (
        "the loss at initialisation is near ln 10",
        "the initial loss is far from ln 10 ≈ 2.30: the untrained model should not be confident",
        "the initial loss is near ln 10 ≈ 2.30"),
    "finite_outputs": (
        "no NaN or inf in the outputs",
        "the model produces NaN or inf values",
        "outputs are finite for real, blank and white images"),
}


def model_check(check_id: str, judge, needs: tuple[str, ...], points: float = 1) -> Check:
    """One of the shared model checks (group and probe "model")."""
    title, fail, success = TEXTS[check_id]
    return Check(check_id, title, points, "model", "model", judge, needs, fail=fail,
                 success=success)
