"""The checks of lesson 02 (MNIST with a convolutional network): ids, points, messages.

25 points: the output-size formula (gap 1) 4, MyCNN (gap 2) 14, the hidden test accuracy 7 —
more than lesson 01's 5, as fit is not a gap here and the trained network is the lesson's proof.
"""
from autograder.engine.checks import Check
from autograder.lessons.common.model_checks import model_check
from autograder.lessons.mnist_cnn import judges as j
from autograder.lessons.mnist_cnn.judges import MIN_FIELD

SIZE, MODEL = ("conv_output_size",), ("MyCNN",)

CHECKS = (
    # ---------------------------------------------------------------- gap 1: conv_output_size
    Check("conv_output_size_values", "the output side for any size, kernel, stride and padding",
          3, "size", "size", j.conv_output_size_values, SIZE,
          fail="conv_output_size is wrong: the side is (size + 2 * padding - kernel_size) "
               "// stride + 1",
          success="right on every case the grader drew, the defaults included"),
    Check("conv_output_size_int", "conv_output_size returns a Python int", 1,
          "size", "size", j.conv_output_size_int, SIZE,
          fail="conv_output_size must return an int: use // (integer division)",
          success="returns a Python int"),
    # ---------------------------------------------------------------- gap 2: MyCNN
    Check("output_shape", "logits of shape (B, 10) for (B, 1, 28, 28) and (B, 28, 28) inputs", 2,
          "model", "model", j.output_shape, MODEL,
          fail="the output shape is wrong: add the channel dimension to (B, 28, 28) inputs, "
               "flatten the feature maps with x.flatten(1) and end with a layer of 10 outputs",
          success="(B, 10) logits for (B, 1, 28, 28) and (B, 28, 28) inputs"),
    Check("any_batch_size", "works for any batch size (1, 7, 64)", 2,
          "model", "model", j.any_batch_size, MODEL,
          fail="forward works for one batch size only: flatten with x.flatten(1), never "
               "x.view(64, -1)",
          success="one exported program serves batches of 1, 7 and 64 images"),
    Check("uses_convolutions", "the exported network runs convolutions", 2,
          "model", "model", j.uses_convolutions, MODEL,
          fail="the exported network runs no convolution: use nn.Conv2d layers",
          success="the exported graph runs convolutions"),
    Check("parameter_budget", "within the lesson's budget of parameters", 1,
          "model", "model", j.parameter_budget, MODEL,
          fail="the model holds more parameters than this lesson allows",
          success="within the lesson's budget of parameters"),
    model_check("batch_independence", j.batch_independence, MODEL),
    model_check("logits_not_probabilities", j.logits_not_probabilities, MODEL),
    Check("non_linear", "a non-linearity between the layers", 1,
          "model", "model", j.non_linear, MODEL,
          fail="the network is affine: add a ReLU after each convolution",
          success="the network is not affine (its ReLUs or max-poolings bend it)"),
    Check("pooling_keeps_the_digit", "no pooling shrinks the maps to a pixel or two before the "
          f"convolutions have seen {MIN_FIELD} × {MIN_FIELD} pixels", 1,
          "model", "model", j.pooling_keeps_the_digit, MODEL,
          fail="a pooling destroys the image: pool by 2 after each convolution",
          success="the poolings keep the digit's layout"),
    model_check("gradients_reach_all_parameters", j.gradients_reach_all_parameters, MODEL),
    model_check("initial_loss", j.initial_loss, MODEL),
    model_check("finite_outputs", j.finite_outputs, MODEL),
    # ---------------------------------------------------------------- hidden
    Check("min_test_accuracy", "trained by the lesson's fit, your MyCNN reaches the minimum "
          "test accuracy", 7, "hidden", "hidden", j.min_test_accuracy, MODEL, hidden=True,
          fail="your MyCNN, trained by the lesson's fit, does not reach the required accuracy "
               "on the test set",
          success="your MyCNN, trained by the lesson's fit, reaches the required test accuracy"),
)

GAPS = {"conv_output_size": 1, "MyCNN": 2}

# What each probe does, for messages such as "too slow: <what> did not finish within 20 s"
WHAT = {"size": "calling your conv_output_size on the grader's cases",
        "model": "building MyCNN and running it on a few batches",
        "hidden": "training your MyCNN with the lesson's fit on the 60000 training images",
        "model_eval": "checking your exported model",
        "hidden_eval": "testing your trained model on the 10000 test images"}

# Probes run again in a fresh child that holds none of the student's code (see lesson 01's)
CLEAN = {"model": "model_eval", "hidden": "hidden_eval"}

# The hidden probe trains a CNN on 60k images: it may take this many times the time limit
TIME_FACTOR = {"hidden": 3}
