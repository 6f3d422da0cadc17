# %% [markdown]
# A minimal correct submission of lesson 01, in the lesson's Jupytext percent format.
# It is the template of the grader's catalogue (tests/submissions/catalogue.py): each buggy
# or alternative submission is this file with a few text substitutions.

# %% tags=["parameters"]
EPOCHS = 2
BATCH_SIZE = 128
SEED = 42
LEARNING_RATE = 1e-3

# %%
import torch
from torch import nn
from tqdm.auto import tqdm

from shared.data import load_mnist
from shared.history import History

torch.manual_seed(SEED)
(x_train, y_train), (x_test, y_test) = load_mnist()


# %%
class MyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 128)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        x = x.reshape(len(x), -1)                 # (B, 784)
        x = torch.relu(self.hidden(x))
        return self.out(x)                        # (B, 10) logits


# %%
def evaluate(model, x, y, loss_fn):
    """(loss, accuracy) of the model on (x, y), without gradients."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = sum(loss_fn(model(x[i:i + 1000]), y[i:i + 1000]).item() * len(y[i:i + 1000])
                   for i in range(0, len(x), 1000)) / len(x)
    model.train(was_training)
    return loss, accuracy(model, x, y)


def fit(model, x_train, y_train, x_test, y_test, epochs=EPOCHS, batch_size=BATCH_SIZE):
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    history = History()
    for epoch in tqdm(range(epochs), desc="epochs"):
        model.train()
        permutation = torch.randperm(len(x_train))
        for i in range(0, len(x_train), batch_size):
            batch = permutation[i:i + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        loss, acc = evaluate(model, x_train, y_train, loss_fn)
        val_loss, val_acc = evaluate(model, x_test, y_test, loss_fn)
        history.record(loss=loss, accuracy=acc, val_loss=val_loss, val_accuracy=val_acc)
    return history


# %%
def accuracy(model, x, y, chunk=1000):
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            correct += (model(x[i:i + chunk]).argmax(dim=1) == y[i:i + chunk]).sum().item()
    model.train(was_training)
    return correct / len(x)


# %%
from autograder.lessons.mnist_dnn import check  # as in a check cell: names the file's lesson


# %%
model = MyModel()
history = fit(model, x_train, y_train, x_test, y_test)
print(f"test accuracy: {accuracy(model, x_test, y_test):.4f}")
