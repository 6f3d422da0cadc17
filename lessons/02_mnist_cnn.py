# ---
# jupyter:
#   autograder:
#     lesson: 02_mnist_cnn
#   generated:
#     by: make lessons
#     from: solutions/02_mnist_cnn.py
#     note: 'do not edit: change the solution and regenerate'
# ---

# %% [markdown]
# # Lesson 02 — Handwritten digits with a convolutional network
#
# The next step after lesson 01, as in Fidle's sequence (a DNN, then a CNN): the same digits,
# the same training loop, a network built for images.
#
# **Objectives**
# - understand what a convolution computes — a small kernel slid over the image, the same
#   weights at every position — by computing one yourself;
# - follow the shape of a batch through convolutions and poolings, and compute it yourself;
# - see what a convolutional network (a "CNN") gains over lesson 01's fully connected one:
#   fewer parameters, more accuracy;
# - look inside: the kernels the first layer learned, and what each layer makes of one digit.
#
# **What you already have.** Lesson 01's `fit`, `evaluate` and `accuracy` — the functions you
# wrote there — are imported from `shared/training.py`, which holds lesson 01's reference
# solution. Here you write three new things.
#
# **How this lesson works.** Run the cells in order, from the top (Shift+Enter runs a cell and
# moves to the next). Three cells have a gap marked `# TODO (gap N)`: replace its
# `raise NotImplementedError(...)` line with your code, run the cell, then run the `check(...)`
# cell below it: it shows ✓ or ✗ for each check, with a hint under each ✗. After a kernel
# restart, run the cells above again before a check (Run ▸ Run All Above Selected Cell).
# Figures are shown here and saved, with the run's numbers, in one folder per run, under `runs/`.

# %% [markdown]
# The next cell holds the run's parameters. It is tagged `parameters`, so that CI and graders can
# run the notebook with other values (fewer epochs, say) without editing the code.

# %% tags=["parameters"]
EPOCHS = 3
BATCH_SIZE = 128
LEARNING_RATE = 2e-3
SEED = 0

# %%
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from shared import plots
from shared.data import load_mnist
from shared.device import pick_device
from shared.training import accuracy, evaluate, fit

torch.manual_seed(SEED)
device = pick_device()
if device.type == "cpu":
    # Layers this small gain nothing from several threads, which wait for each other (and
    # collapse when other programs share the cores).
    torch.set_num_threads(1)
print(f"PyTorch {torch.__version__}, device: {device}")

# %% [markdown]
# ## 1. The data, as in lesson 01
#
# The same 60,000 training and 10,000 test images, standardised with the mean and standard
# deviation of the training pixels, converted to `float32` once.

# %%
(x_train, y_train), (x_test, y_test) = load_mnist(normalize=False)
x_train = x_train.float() / 255
x_test = x_test.float() / 255
mean, std = x_train.mean(), x_train.std()
x_train = (x_train - mean) / std
x_test = (x_test - mean) / std
print("x_train", tuple(x_train.shape), x_train.dtype, "  x_test", tuple(x_test.shape))

# %% [markdown]
# ## 2. What a convolution computes
#
# Lesson 01's first layer flattens the image into 784 numbers and gives each of its 100 neurons
# its own weight for every pixel: a stroke in the top-left corner and the same stroke two pixels
# to the right meet different weights, and the network must learn them both.
#
# A convolution instead slides a small grid of weights, the **kernel** (here 3 × 3), over the
# image. At each position it multiplies the kernel with the pixels under it, element by element,
# and sums: one number of the output. The **same** nine weights are used at every position, so
# a pattern is recognised wherever it sits. (What deep learning calls a convolution does not
# flip the kernel: mathematicians call it a cross-correlation.)
#
# Below, a 5 × 6 image, 0 on its left half and 1 on its right half, and a kernel that computes
# "right column minus left column": it answers 3 where its window straddles the vertical edge
# between the two halves, 0 where the image is flat.

# %%
image = torch.tensor([[0., 0., 0., 1., 1., 1.]] * 5)  # (5, 6): an edge after column 2
kernel = torch.tensor([[-1., 0., 1.]] * 3)  # (3, 3)
by_hand = (image[0:3, 1:4] * kernel).sum()  # the window at row 0, column 1
by_torch = F.conv2d(image[None, None], kernel[None, None])  # (1, 1, 3, 4): batch, channel, ...
print("one output by hand:", by_hand.item())
print("every position:\n", by_torch[0, 0])

# %% [markdown]
# **Channels.** A colour image has 3 values per pixel, the channels red, green and blue; our
# grey digits have 1. A convolution layer `nn.Conv2d(in_channels, out_channels, kernel_size)`
# holds `out_channels` kernels, each spanning all the input channels: a kernel of shape
# (C_in, k, k) multiplies the C_in × k × k values under it and sums them all, plus one number
# of its own, its **bias**. Each kernel makes one output map, so a batch (B, C_in, H, W) becomes
# (B, C_out, H', W'). The layer holds C_out × (C_in × k × k + 1) parameters, whatever the
# image's size.
#
# Your turn: compute a convolution yourself, for one image of any number of channels, with no
# padding and a step of one pixel — what `F.conv2d` computes. The output value of kernel `o` at
# position (r, s) is `bias[o]` plus the sum of the window of `x` under the kernel there, times
# the kernel, element by element. How many positions are there along each side? The example
# above answers for a 5 × 6 image and a 3 × 3 kernel.

# %%
def conv2d_by_hand(x, weight, bias):
    """F.conv2d for one image, no padding, stride 1: x (C_in, H, W), weight (C_out, C_in, kh, kw)
    and bias (C_out,) give the C_out output maps."""
    # TODO (gap 1): compute every output value from the window under the kernel, with loops
    #   over the output positions (or x.unfold) — not with F.conv2d or nn.Conv2d.
    # YOUR CODE HERE
    raise NotImplementedError("gap not filled yet: see the TODO above")


print(conv2d_by_hand(image[None], kernel[None, None], torch.zeros(1)))  # the edge, by hand
x_some, weight_some, bias_some = torch.randn(3, 7, 9), torch.randn(4, 3, 3, 2), torch.randn(4)
print("the same as F.conv2d:", torch.allclose(conv2d_by_hand(x_some, weight_some, bias_some),
                                              F.conv2d(x_some[None], weight_some, bias_some)[0],
                                              atol=1e-5))

# %%
from autograder.lessons.mnist_cnn import check

check("conv")

# %% [markdown]
# **Pooling.** A 2 × 2 max-pooling keeps the largest value of each 2 × 2 block: it halves each
# side, has no parameters, and gives the same result when a feature moves by a pixel inside its
# block.

# %%
print(F.max_pool2d(torch.arange(16.).reshape(1, 4, 4), kernel_size=2))  # (1, 4, 4) -> (1, 2, 2)

# %% [markdown]
# ## 3. Output sizes: padding, stride, pooling
#
# Your `conv2d_by_hand` slid its window one pixel at a time. The **stride** is the step between
# two positions (1 for our convolutions, 2 for a 2 × 2 pooling, which sees each pixel once);
# **padding** adds `padding` zeros on each border first. Count the positions:
#
#     input, size 6:        a b c d e f
#     kernel 3, stride 1:   [a b c]
#                             [b c d]
#                               [c d e]
#                                 [d e f]       4 positions
#     kernel 2, stride 2:   [a b][c d][e f]     3 positions
#     kernel 3, stride 2:   [a b c]
#                                 [c d e]       2 positions: a window must fit entirely
#     padding 1:          0 a b c d e f 0       kernel 3, stride 1: 6 positions
#
# Write the count for any size, kernel size, stride and padding: the same for a convolution and
# a pooling, along the height and along the width. Check it on the examples above, by hand.

# %%
def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """The side of the output of a convolution or pooling over a side of `size` pixels."""
    # TODO (gap 2): return the number of positions the window takes along one side, as an int
    #   (// is Python's integer division).
    # YOUR CODE HERE
    raise NotImplementedError("gap not filled yet: see the TODO above")


print(conv_output_size(6, 3), conv_output_size(6, 2, stride=2), conv_output_size(6, 3, stride=2),
      conv_output_size(6, 3, padding=1))
conv = nn.Conv2d(1, 1, kernel_size=5, stride=2, padding=1)
print(tuple(conv(torch.zeros(1, 1, 28, 28)).shape), "vs", conv_output_size(28, 5, 2, 1))

# %%
from autograder.lessons.mnist_cnn import check

check("size")

# %% [markdown]
# ## 4. Receptive field
#
# A value of the first layer's output sees 5 × 5 pixels of the digit: its **receptive field**.
# A value of the second convolution sees 5 × 5 values of the layer below, each of which sees a
# patch of the digit: its field is wider. Each layer adds `(kernel_size - 1) × jump` pixels,
# where the *jump* is how many input pixels separate two neighbouring values of the layer below
# (every stride multiplies it). The network of this lesson:

# %%
field, jump = 1, 1
print(f"{'layer':<11}{'receptive field':>17}")
for name, kernel_size, stride in [("conv1 5×5", 5, 1), ("pool 2×2", 2, 2),
                                  ("conv2 5×5", 5, 1), ("pool 2×2", 2, 2)]:
    field, jump = field + (kernel_size - 1) * jump, jump * stride
    print(f"{name:<11}{field:>14} × {field}")

# %% [markdown]
# After the second pooling, each value sees 16 × 16 pixels of the digit: a few strokes and
# where they meet. The linear layers that follow see all positions at once.

# %% [markdown]
# ## 5. Create the model
#
#     images (B, 1, 28, 28)
#       → conv1: 16 kernels of 5 × 5 → max-pool 2 × 2 → ReLU
#       → conv2: 32 kernels of 5 × 5 → max-pool 2 × 2 → ReLU
#       → flatten → Linear to 128 → ReLU → Linear to 10: the logits
#
# What shape does a batch have after each step? Work it out with `conv_output_size`, and write
# it as a comment beside each line of `forward`, as in lesson 01 (`# (B, 16, 24, 24)` ...). The
# first `Linear` takes the flattened maps: compute its `in_features` in `__init__` from the
# sides `conv_output_size` gives, layer by layer from 28 — change a kernel and it follows.
#
# No padding: the digits sit in the middle of the image, its borders are blank. We pool before
# the ReLU: the ReLU keeps the order of numbers, so the largest of four values after a ReLU is
# the ReLU of the largest, and pooling first gives the same result with a quarter of the ReLUs.
# As in lesson 01 the model returns **logits**, no softmax: `nn.CrossEntropyLoss` applies it.
#
# **Dropout.** `nn.Dropout(0.25)` sets each value to 0 with probability 0.25 during training
# (and multiplies the others by 1 / 0.75, to keep their expected sum), a different random
# quarter for every image of every batch. The linear layers cannot rely on any single feature,
# which reduces overfitting. In evaluation mode it does nothing: another reason why `accuracy`
# and `evaluate` call `model.eval()`.
#
# `forward` receives (B, 28, 28), as `fit` gives it, or (B, 1, 28, 28): a convolution needs the
# channel dimension, so add it when it is missing.

# %%
class MyCNN(nn.Module):
    """Two convolutions (16 and 32 kernels of 5 × 5), each followed by a 2 × 2 max-pooling and
    a ReLU, then two linear layers with dropout before each; returns logits."""

    def __init__(self):
        super().__init__()
        # TODO (gap 3): create the layers of the sketch and nn.Dropout(0.25); compute the first
        #   Linear's in_features with conv_output_size.
        # YOUR CODE HERE
        raise NotImplementedError("gap not filled yet: see the TODO above")

    def forward(self, x):
        # TODO (gap 3): the steps of the sketch, after adding the channel dimension to
        #   (B, 28, 28) inputs, with dropout before each Linear. Write each line's output shape
        #   in a comment; no softmax.
        # YOUR CODE HERE
        raise NotImplementedError("gap not filled yet: see the TODO above")


model = MyCNN()
print(model)
print(tuple(model(x_train[:2]).shape), tuple(model(x_train[:2].unsqueeze(1)).shape))

# %%
from autograder.lessons.mnist_cnn import check

check("model")

# %% [markdown]
# ## 6. Parameters and work, CNN against DNN
#
# Each layer's output shape for a batch of B images, and its parameters.

# %%
plots.model_summary(model)

# %% [markdown]
# Lesson 01's network holds 784 × 100 + 100 + 100 × 100 + 100 + 100 × 10 + 10 = 89,610
# parameters; this one about 10 % fewer, and its two convolutions only 13,248 of them: `conv1`'s
# 16 × 25 weights are reused at each of its 24 × 24 output positions. Reuse is not free: a
# parameter used 576 times costs 576 multiplications per image. Counting one multiply-add per
# weight and position:

# %%
dnn_work = 784 * 100 + 100 * 100 + 100 * 10
cnn_work = {"conv1": 16 * 24 * 24 * (1 * 5 * 5), "conv2": 32 * 8 * 8 * (16 * 5 * 5),
            "hidden": 512 * 128, "output": 128 * 10}
for name, work in cnn_work.items():
    print(f"{name:>7}: {work:>9,} multiply-adds per image")
print(f"CNN {sum(cnn_work.values()):,} against DNN {dnn_work:,}: "
      f"{sum(cnn_work.values()) / dnn_work:.0f} times more work per image")

# %% [markdown]
# So an epoch takes longer than in lesson 01: we train for `EPOCHS` = 3 epochs instead of 15
# (about 80 s on one CPU core; the bar under the cell moves with every batch).
#
# ## 7. Train
#
# `fit` is lesson 01's: Adam, mini-batches of `BATCH_SIZE` shuffled images, the learning rate
# shrinking by 20 % after each epoch, and the loss and accuracy on 10,000 training images and
# on the test images after each epoch. A fresh model, seeded.

# %%
torch.manual_seed(SEED)
model = MyCNN().to(device)
start, cpu_start = time.perf_counter(), time.process_time()
history = fit(model, x_train, y_train, x_test, y_test, epochs=EPOCHS, batch_size=BATCH_SIZE,
              learning_rate=LEARNING_RATE)
train_seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
print(f"{EPOCHS} epochs in {train_seconds:.1f} s ({cpu_seconds:.1f} s of CPU time)")

# %% [markdown]
# ## 8. Evaluate

# %%
test_loss, test_accuracy = evaluate(model, x_test, y_test, nn.CrossEntropyLoss())
print(f"test loss {test_loss:.4f}, test accuracy {test_accuracy:.2%}")

# %% [markdown]
# ## 9. History
#
# The training accuracy (measured in eval mode, without dropout) ends a few tenths of a percent
# above the test accuracy: dropout and the few epochs keep overfitting small.

# %%
plots.plot_history(history, held_out="test", save_as="history");

# %% [markdown]
# ## 10. What the first layer learned
#
# The 16 kernels of `conv1`, 5 × 5 weights each: red weights add the pixel under them, blue ones
# subtract it. Nobody drew them: they started random and training shaped them. Some show a red
# band beside a blue one, an edge detector like the kernel of section 2, at some angle; others
# are hard to read on their own. Their effect on a digit, next, is clearer.

# %%
plots.plot_filters(model.conv1.weight, save_as="filters");

# %% [markdown]
# ## 11. One digit, layer by layer
#
# A test digit, then the 16 maps of `conv1` (24 × 24, before pooling and ReLU: the ReLU keeps
# the red and zeroes the blue) and the first 16 of the 32 maps of `conv2` (8 × 8). Each `conv1`
# map is strong where its kernel's pattern is: some mark the top or the bottom edge of the
# horizontal bar, others the left or right edge of the slanted stroke. `conv2`'s maps are
# coarser and harder to name: each combines all 16 maps below it.

# %%
plots.plot_feature_maps(model, x_test[0], ["conv1", "conv2"], save_as="feature_maps");

# %% [markdown]
# ## 12. Errors
#
# The model's predictions for all test images (eval mode, no gradients), and its mistakes:
# "prediction (truth)" in red.

# %%
model.eval()
with torch.no_grad():
    y_pred = model(x_test.to(device)).argmax(dim=1).cpu()  # (10000,)
errors = torch.nonzero(y_pred != y_test).flatten()
print(f"{len(errors)} errors among {len(y_test)} test images")
plots.plot_images(x_test, y_test, indices=errors[:24], y_pred=y_pred, columns=12, save_as="errors");

# %% [markdown]
# ## 13. Confusion matrix
#
# Row *i*, column *j*: how many test images of digit *i* the model called *j*. With so few
# errors, shares of each row would all round to 0.00 or 0.01: the counts say more.

# %%
plots.plot_confusion_matrix(y_test, y_pred, save_as="confusion_matrix");

# %% [markdown]
# ## 14. DNN against CNN, on the same test set
#
# Lesson 01's network (784 → 100 → 100 → 10), trained here by the same `fit`, with the same
# seed, epochs, batch size and learning rate. (Lesson 01 trains it for 15 epochs, to about
# 98.2 %: more epochs do not close the gap.)

# %%
torch.manual_seed(SEED)
dnn = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                    nn.Linear(100, 10)).to(device)
dnn_history = fit(dnn, x_train, y_train, x_test, y_test, epochs=EPOCHS, batch_size=BATCH_SIZE,
                  learning_rate=LEARNING_RATE)
dnn_accuracy = accuracy(dnn, x_test, y_test)
print(f"test accuracy: DNN {dnn_accuracy:.2%}, CNN {test_accuracy:.2%}")

# %% [markdown]
# The digits the DNN gets wrong and the CNN right, with the DNN's answer in red — and how many
# go the other way.

# %%
dnn.eval()
with torch.no_grad():
    dnn_pred = dnn(x_test.to(device)).argmax(dim=1).cpu()
cnn_only = torch.nonzero((dnn_pred != y_test) & (y_pred == y_test)).flatten()
dnn_only = torch.nonzero((dnn_pred == y_test) & (y_pred != y_test)).flatten()
print(f"right for the CNN only: {len(cnn_only)}; right for the DNN only: {len(dnn_only)}")
plots.plot_images(x_test, y_test, indices=cnn_only[:24], y_pred=dnn_pred, columns=12,
                  save_as="dnn_errors_cnn_right");

# %% [markdown]
# Most of them a human reads without hesitation. The DNN ties each pattern it learned to a
# place in the image, with one weight per pixel; the CNN's kernels find a stroke wherever it is,
# and its poolings forgive a shift of a pixel or two.

# %% [markdown]
# ## Graded by your instructor
#
# When your notebook is graded, a hidden check also trains a fresh `MyCNN` with `fit`, for one
# epoch in mini-batches of 64 on 12,000 training images, and measures its accuracy on the test
# images (shuffled, with a little noise). It must be a convolutional network — convolutions whose kernels see
# neighbouring pixels, and non-linearities — and reach the lesson's minimum accuracy; the
# grader tells you the accuracy it measured.

# %%
# Hidden check, run when your notebook is graded: the minimum test accuracy.

# %% [markdown]
# ## Summary
#
# The run's numbers go to `metrics.json` beside the figures, in this run's folder.

# %%
metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss,
           "dnn_test_accuracy": dnn_accuracy,
           "train_seconds": round(train_seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2),
           "epochs": EPOCHS, "batch_size": BATCH_SIZE,
           "learning_rate": LEARNING_RATE, "seed": SEED, "device": str(device)}
(plots.run_dir() / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
print(f"Figures and metrics are in {plots.run_dir()}")
print(f"Test accuracy: {test_accuracy:.4f}")
