# %% [markdown]
# A minimal correct submission of lesson 02, in the lesson's Jupytext percent format.
# It is the template of the grader's lesson-02 catalogue (tests/submissions/cnn_catalogue.py):
# each buggy or alternative submission is this file with a few text substitutions.

# %% tags=["parameters"]
EPOCHS = 1
BATCH_SIZE = 128
SEED = 0

# %%
import torch
from torch import nn

from shared.data import load_mnist
from shared.training import accuracy, evaluate, fit

torch.manual_seed(SEED)
(x_train, y_train), (x_test, y_test) = load_mnist()


# %%
def conv2d_by_hand(x, weight, bias):
    c_out, c_in, kh, kw = weight.shape
    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = x.new_empty(c_out, height, width)
    for r in range(height):
        for s in range(width):
            window = x[:, r:r + kh, s:s + kw]         # (C_in, kh, kw)
            out[:, r, s] = (weight * window).sum(dim=(1, 2, 3)) + bias
    return out


# %%
from autograder.lessons.mnist_cnn import check  # a check cell: it names the file's lesson

check("conv")


# %%
def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


# %%
check("size")


# %%
class MyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.pool = nn.MaxPool2d(kernel_size=2)
        side = conv_output_size(28, 5)                # 24
        side = conv_output_size(side, 2, stride=2)    # 12
        side = conv_output_size(side, 5)              # 8
        side = conv_output_size(side, 2, stride=2)    # 4
        self.hidden = nn.Linear(32 * side * side, 128)
        self.output = nn.Linear(128, 10)

    def forward(self, x):
        if x.dim() == 3:
            x = x.unsqueeze(1)                        # (B, 1, 28, 28)
        x = self.pool(torch.relu(self.conv1(x)))      # (B, 16, 12, 12)
        x = self.pool(torch.relu(self.conv2(x)))      # (B, 32, 4, 4)
        x = x.flatten(1)                              # (B, 512)
        x = torch.relu(self.hidden(x))                # (B, 128)
        return self.output(x)                         # (B, 10) logits


# %%
check("model")

# %%
model = MyCNN()
history = fit(model, x_train, y_train, x_test, y_test, epochs=EPOCHS, batch_size=BATCH_SIZE)
print(f"test accuracy: {accuracy(model, x_test, y_test):.4f}")

# %%
check("hidden")
