"""Lesson 02's causes of an error raised in MyCNN (autograder/lessons/mnist_cnn/hints.py), on
PyTorch's own messages — eager, and as torch.export words them — for the mistakes students
make: each is told its cause, not the generic "in_features must be channels × side × side".
The whole grader says the same through the jail (tests/test_grader_cnn.py's catalogue)."""
import pytest
import torch
from torch import nn

from autograder.engine.probing import part
from autograder.lessons.common import graphs
from autograder.lessons.mnist_cnn import graph, hints


class Net(nn.Module):
    """The lesson's CNN with one thing changed."""

    def __init__(self, conv1=(1, 16), conv2=(16, 32), pool_stride=2, in_features=512,
                 flatten=lambda x: x.flatten(1), channel=True):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(*conv1, 5), nn.Conv2d(*conv2, 5)
        self.pool = nn.MaxPool2d(2, stride=pool_stride)
        self.hidden, self.flatten, self.channel = nn.Linear(in_features, 10), flatten, channel

    def forward(self, x):
        if self.channel and x.dim() == 3:
            x = x.unsqueeze(1)
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.hidden(self.flatten(x))


CASES = {  # mistake -> (the net, a phrase of its cause)
    "first_in_channels": (dict(conv1=(3, 16)), "make its in_channels 1 — nn.Conv2d(1, 16, ...)"),
    "second_in_channels": (dict(conv2=(32, 32)),
                           "the out_channels of the convolution before it (16)"),
    "missing_channel": (dict(channel=False), "x.unsqueeze(1)"),
    "view_all": (dict(flatten=lambda x: x.view(-1)), "flattened the batch too"),
    "view_other_batch": (dict(flatten=lambda x: x.view(128, -1)),
                         "the batch size is written into forward (x.view(128, -1))"),
    "pool_stride_one": (dict(pool_stride=1, in_features=512), "its stride must be 2"),
    "in_features": (dict(in_features=800),
                    "the last feature maps are 32 × 4 × 4 = 512 numbers per image, but the "
                    "first nn.Linear takes in_features=800"),
}


def raised(model, x) -> str:
    with pytest.raises(Exception) as error:
        model(x)
    return str(error.value)


@pytest.mark.parametrize("case", CASES)
def test_each_mistake_is_told_its_cause_eagerly_and_as_traced(case):
    kwargs, cause = CASES[case]
    model = Net(**kwargs).eval()
    x = torch.rand(64, 28, 28) if case == "missing_channel" else torch.rand(64, 1, 28, 28)
    data = {"trace": part(lambda: graph.trace(model, x))}
    eager = raised(model, x)
    assert cause in hints.diagnose(eager, data), eager
    exported = graphs.export(model, x)
    assert "export_error" in exported, exported
    if case != "view_other_batch":  # traced with a dynamic batch, it is a fixed batch size
        assert cause in (hints.diagnose(exported["export_error"], data) or ""), exported


def test_the_trace_records_each_layer_until_the_one_that_raised():
    model = Net(pool_stride=1).eval()
    steps = graph.trace(model, torch.rand(4, 1, 28, 28))
    assert [s["kind"] for s in steps] == ["convolution", "pooling", "convolution", "pooling",
                                          "linear"]
    assert steps[1]["input"] == [4, 16, 24, 24] and steps[1]["output"] == [4, 16, 23, 23]
    assert steps[-1]["output"] is None  # the matrix product raised


def test_an_error_that_is_none_of_these_gets_no_diagnosis():
    assert hints.diagnose("CUDA out of memory", {}) is None
