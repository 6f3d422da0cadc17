"""Lesson 01's reference `fit`, `evaluate` and `accuracy`, for the lessons that come after it.

Lesson 01 has its students write these three; later lessons import them from here instead of
asking for them again (as d2l's CNN chapter reuses `d2l.accuracy`). The code is lesson 01's
solution, with the notebook's globals turned into parameters: the lines of its gaps are
copied verbatim, and `tests/test_shared_training.py` fails when the two drift apart.
"""
import math
import sys

import torch
from torch import nn
from tqdm import tqdm

from shared.history import History


def evaluate(model, x, y, loss_fn, chunk_size=1000):
    """(mean loss, accuracy) of `model` on (x, y), in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), chunk_size):
            logits = model(x[start:start + chunk_size].to(device))
            total += loss_fn(logits, y[start:start + chunk_size].to(device)).item() * len(logits)
    model.train(was_training)
    return total / len(x), accuracy(model, x, y)


def fit(model, x_train, y_train, x_test, y_test, epochs, batch_size, learning_rate=2e-3,
        gamma=0.8):
    """Train `model` with Adam, the learning rate times `gamma` after each epoch; return the
    History of per-epoch train/test loss and accuracy. Interrupted (the notebook's stop
    button), it returns the epochs done so far."""
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    device = next(model.parameters()).device  # the data goes where the model is
    history = History()
    n = len(x_train)
    # One bar for the whole training, moved by every optimizer step: an epoch of a CNN takes
    # tens of seconds, a bar that moved once per epoch would sit at 0 % all that time.
    progress = tqdm(total=epochs * math.ceil(n / batch_size), unit="batch", file=sys.stdout)
    optimizer.register_step_post_hook(lambda *_: progress.update())
    try:
        for epoch in range(epochs):
            progress.set_description(f"epoch {epoch + 1}/{epochs}")
            model.train()
            order = torch.randperm(n)
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                x, y = x_train[batch].to(device), y_train[batch].to(device)  # (B, 28, 28), (B,)
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
            scheduler.step()
            # 10,000 training images draw the same curves as 60,000, for a sixth of the cost
            train_loss, train_accuracy = evaluate(model, x_train[:10_000], y_train[:10_000],
                                                  loss_fn)
            test_loss, test_accuracy = evaluate(model, x_test, y_test, loss_fn)
            history.record(loss=train_loss, accuracy=train_accuracy,  # held out: the test set
                           val_loss=test_loss, val_accuracy=test_accuracy)
            progress.set_postfix(loss=f"{train_loss:.4f}", test_accuracy=f"{test_accuracy:.4f}")
    except KeyboardInterrupt:
        progress.write(f"interrupted: fit returns the epochs it finished ({len(history)} of {epochs})")
    finally:
        progress.close()
    return history


def accuracy(model, x, y, chunk_size=1000):
    """The fraction of images in x whose highest logit is their label in y: a float in [0, 1]."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), chunk_size):
            logits = model(x[start:start + chunk_size].to(device))  # (chunk, 10)
            labels = y[start:start + chunk_size].to(device)
            correct += (logits.argmax(dim=1) == labels).sum().item()
    model.train(was_training)
    return correct / len(x)
