"""The checks of lesson 01 (MNIST with a fully connected network): ids, points, messages.

Points are the ones agreed for the CLI, the self-check cells and nbgrader (25 in all).
"""
from autograder.engine.checks import Check
from autograder.lessons.common.model_checks import model_check
from autograder.lessons.mnist_dnn import accuracy as acc
from autograder.lessons.mnist_dnn import judges as j

MODEL, FIT, ACCURACY = ("MyModel",), ("fit",), ("accuracy",)

CHECKS = (
    # ---------------------------------------------------------------- gap 1: MyModel
    Check("output_shape", "logits of shape (B, 10) for every accepted input shape", 2,
          "model", "model", j.output_shape, MODEL,
          fail="the output shape is wrong: flatten the input to (B, 784) whatever its shape and "
               "end with a layer of 10 outputs",
          success="(B, 10) logits for batches of 1, 7 and 64 and for (B, 28, 28), "
                  "(B, 1, 28, 28) and (B, 784) inputs"),
    model_check("batch_independence", j.batch_independence, MODEL, points=2),
    model_check("logits_not_probabilities", j.logits_not_probabilities, MODEL),
    model_check("gradients_reach_all_parameters", j.gradients_reach_all_parameters, MODEL),
    model_check("initial_loss", j.initial_loss, MODEL),
    model_check("finite_outputs", j.finite_outputs, MODEL),
    # ---------------------------------------------------------------- gap 2: fit
    Check("fit_returns_history", "fit returns the per-epoch history", 1,
          "fit", "fit", j.fit_returns_history, FIT,
          fail="fit must return the History with loss, accuracy, val_loss, val_accuracy per epoch",
          success="fit returns a history with one value per epoch for each metric"),
    Check("fit_loss_decreases", "training lowers the loss", 2,
          "fit", "fit", j.fit_loss_decreases, FIT,
          fail="the training loss did not decrease",
          success="the training loss decreases"),
    Check("fit_visits_every_sample", "each epoch uses every sample once, last partial batch "
          "included", 2, "fit", "fit", j.fit_visits_every_sample, FIT,
          fail="each epoch must use every training sample exactly once",
          success="each epoch uses every sample exactly once"),
    Check("fit_reshuffles", "a new order every epoch", 1,
          "fit", "fit", j.fit_reshuffles, FIT,
          fail="shuffle the samples anew at the start of every epoch (torch.randperm)",
          success="the order changes from epoch to epoch"),
    Check("fit_step_count", "one optimizer step per mini-batch", 1,
          "fit", "fit", j.fit_step_count, FIT,
          fail="call optimizer.step() exactly once per mini-batch",
          success="one optimizer step per mini-batch"),
    Check("fit_zero_grad", "gradients do not accumulate across steps", 1,
          "fit", "fit", j.fit_zero_grad, FIT,
          fail="call optimizer.zero_grad() before every backward pass",
          success="each step uses only its own batch's gradient"),
    # ---------------------------------------------------------------- gap 3: accuracy
    Check("accuracy_matches_reference", "accuracy agrees with the grader's", 1,
          "accuracy", "accuracy", acc.accuracy_matches_reference, ACCURACY,
          fail="accuracy does not compute the fraction of correct argmax predictions",
          success="the value the grader computed, a last partial chunk included"),
    Check("accuracy_in_chunks", "accuracy runs the model chunk by chunk", 1,
          "accuracy", "accuracy", acc.accuracy_in_chunks, ACCURACY,
          fail="accuracy must run the model on chunks of the images, not all at once",
          success="the model runs on chunks, so any number of images fits in memory"),
    Check("accuracy_returns_float", "accuracy returns a Python float in [0, 1]", 1,
          "accuracy", "accuracy", acc.accuracy_returns_float, ACCURACY,
          fail="accuracy must return a Python float between 0 and 1",
          success="returns a Python float in [0, 1]"),
    Check("accuracy_keeps_mode", "eval mode without gradients, then the model's mode restored",
          1, "accuracy", "accuracy", acc.accuracy_keeps_mode, ACCURACY,
          fail="predict in eval mode under torch.no_grad() and restore the model's mode after",
          success="predicts in eval mode without gradients and restores the mode"),
    # ---------------------------------------------------------------- hidden
    Check("min_test_accuracy", "trained by your fit, your model reaches the minimum test "
          "accuracy", 5, "hidden", "hidden", j.min_test_accuracy, MODEL + FIT, hidden=True,
          fail="your MyModel, trained by your fit, does not reach the required accuracy on the "
               "test set",
          success="your MyModel, trained by your fit, reaches the required test accuracy"),
)

GAPS = {"MyModel": 1, "fit": 2, "accuracy": 3}

# What each probe does, for messages such as "too slow: <what> did not finish within 20 s"
WHAT = {"model": "building MyModel and running it on a few batches",
        "fit": "running your fit on 250 images for 3 epochs",
        "accuracy": "running your accuracy on the grader's small test sets",
        "hidden": "training your MyModel with your fit on the 60000 training images",
        "model_eval": "checking your exported model",
        "hidden_eval": "testing your trained model on the 10000 test images"}

# Probes run in a fresh child that holds none of the student's code, on what another probe
# exported: "model" exports MyModel(), "model_eval" gathers the model checks' evidence from the
# exported programs; "hidden" trains the student's model and exports it, "hidden_eval" scores it.
CLEAN = {"model": "model_eval", "hidden": "hidden_eval"}

# A probe may run this many times the sandbox's time limit (the hidden one trains on 60k images)
TIME_FACTOR = {"hidden": 3}
