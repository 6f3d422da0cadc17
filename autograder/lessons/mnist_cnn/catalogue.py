"""The checks of lesson 02 (MNIST with a convolutional network): ids, points, messages.

25 points: the convolution by hand (gap 1) 3, the output-size formula (gap 2) 3, MyCNN (gap 3)
12, the hidden test accuracy 7 — more than lesson 01's 5, as fit is not a gap here and the
trained network is the lesson's proof. Each gap is graded on its own: MyCNN is built with the
grader's conv_output_size (probes.py).
"""
from autograder.engine.checks import Check
from autograder.lessons.common import hidden
from autograder.lessons.common.model_checks import model_check
from autograder.lessons.mnist_cnn import by_hand
from autograder.lessons.mnist_cnn import judges as j
from autograder.lessons.mnist_cnn.judges import MIN_FIELD

BY_HAND, SIZE, MODEL = ("conv2d_by_hand",), ("conv_output_size",), ("MyCNN",)

CHECKS = (
    # ---------------------------------------------------------------- gap 1: conv2d_by_hand
    Check("conv_by_hand_values", "the values of F.conv2d, for any channels, kernel and bias", 2,
          "conv", "conv", by_hand.conv_by_hand_values, BY_HAND,
          fail="conv2d_by_hand does not compute what F.conv2d computes",
          success="the values of F.conv2d on every case the grader drew"),
    Check("conv_by_hand_own_work", "computed by hand: no convolution of PyTorch inside", 1,
          "conv", "conv", by_hand.conv_by_hand_own_work, BY_HAND,
          fail="conv2d_by_hand must compute the windows itself, without F.conv2d or nn.Conv2d",
          success="computes every window itself"),
    # ---------------------------------------------------------------- gap 2: conv_output_size
    Check("conv_output_size_values", "the output side for any size, kernel, stride and padding",
          2, "size", "size", j.conv_output_size_values, SIZE,
          fail="conv_output_size is wrong: count the positions the window takes along one side",
          success="right on every case the grader drew, the defaults included"),
    Check("conv_output_size_int", "conv_output_size returns a Python int", 1,
          "size", "size", j.conv_output_size_int, SIZE,
          fail="conv_output_size must return an int: use // (integer division)",
          success="returns a Python int"),
    # ---------------------------------------------------------------- gap 3: MyCNN
    Check("output_shape", "logits of shape (B, 10) for (B, 1, 28, 28) and (B, 28, 28) inputs", 1,
          "model", "model", j.output_shape, MODEL,
          fail="the output shape is wrong: add the channel dimension to (B, 28, 28) inputs, "
               "flatten the feature maps with x.flatten(1) and end with a layer of 10 outputs",
          success="(B, 10) logits for (B, 1, 28, 28) and (B, 28, 28) inputs"),
    Check("any_batch_size", "works for any batch size (1, 7, 64)", 1,
          "model", "model", j.any_batch_size, MODEL,
          fail="forward works for one batch size only: flatten with x.flatten(1), never "
               "x.view(64, -1)",
          success="the same model serves batches of 1, 7 and 64 images"),
    Check("uses_convolutions", "convolutions whose kernels see neighbouring pixels", 1,
          "model", "model", j.uses_convolutions, MODEL,
          fail="the network runs no convolution larger than 1 × 1: use nn.Conv2d layers with "
               "kernels of 3 × 3 or 5 × 5",
          success="the network runs convolutions"),
    Check("parameter_budget", "within the lesson's budget of parameters", 1,
          "model", "model", j.parameter_budget, MODEL,
          fail="the model holds more parameters than this lesson allows",
          success="within the lesson's budget of parameters"),
    model_check("batch_independence", j.batch_independence, MODEL),
    model_check("logits_not_probabilities", j.logits_not_probabilities, MODEL),
    model_check("output_depends_on_the_image", j.output_depends_on_the_image, MODEL),
    Check("non_linear", "non-linearities between the convolutions and the layers", 1,
          "model", "model", j.non_linear, MODEL,
          fail="the network is affine: add a ReLU after each convolution",
          success="ReLUs or max-poolings bend the maps between the layers"),
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
          success="your MyCNN, trained by the lesson's fit, reaches the required test accuracy",
          public=hidden.public_line),
)

GAPS = {"conv2d_by_hand": 1, "conv_output_size": 2, "MyCNN": 3}

# What each probe does, for messages such as "too slow: <what> did not finish within 20 s"
WHAT = {"conv": "calling your conv2d_by_hand on the grader's cases",
        "size": "calling your conv_output_size on the grader's cases",
        "model": "building MyCNN and running it on a few batches",
        "hidden": "training your MyCNN with the lesson's fit on the 60000 training images",
        "model_eval": "checking your model's graph",
        "hidden_eval": "testing your trained model on the 10000 test images"}

# Probes run again in a fresh child that holds none of the student's code (see lesson 01's)
CLEAN = {"model": "model_eval", "hidden": "hidden_eval"}

# The hidden probe trains a CNN on 60k images: it may take this many times the time limit
TIME_FACTOR = {"hidden": 3}
