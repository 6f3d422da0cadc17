"""shared.plots for lesson 02: the kernels of a convolution and the feature maps of one image."""
import os

os.environ["MPLBACKEND"] = "Agg"  # before pyplot is imported, here or in shared.plots

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from shared import plots  # noqa: E402


@pytest.fixture(autouse=True)
def headless_run_dir(tmp_path, monkeypatch):
    """Agg backend, figures saved under tmp_path, every figure closed afterwards."""
    plt.switch_backend("Agg")
    monkeypatch.setattr(plots, "_run_dir", None)
    monkeypatch.delenv("MNIST_RUN_DIR", raising=False)
    plots.run_dir(tmp_path)
    yield tmp_path
    plt.close("all")


class TwoConvs(nn.Module):
    """conv1 (1 -> 6, 5x5) -> ReLU -> pool -> conv2 (6 -> 20, 3x3): pool is called once."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 20, 3)

    def forward(self, x):
        x = x.unsqueeze(1) if x.dim() == 3 else x  # (B, 1, 28, 28)
        return self.conv2(self.pool(torch.relu(self.conv1(x))))  # (B, 20, 10, 10)


def an_image(seed=0):
    return torch.rand(28, 28, generator=torch.Generator().manual_seed(seed))


# --- plot_filters ---------------------------------------------------------------------------

def test_filters_show_each_kernel_with_zero_white():
    conv = nn.Conv2d(1, 10, 5)
    fig = plots.plot_filters(conv.weight, columns=4)
    assert len(fig.axes) == 10  # a 3 x 4 grid whose last two cells are removed
    assert [ax.get_title() for ax in fig.axes] == [str(i) for i in range(10)]
    for ax, kernel in zip(fig.axes, conv.weight.detach()[:, 0]):
        image = ax.images[0]
        np.testing.assert_allclose(image.get_array(), kernel.numpy())
        low, high = image.get_clim()
        assert low == -high == -float(kernel.abs().max())  # symmetric: zero is white
    assert "10 kernels of 5 × 5" in fig._suptitle.get_text()


def test_filters_accept_kernels_without_the_channel_dimension_and_save(headless_run_dir):
    weight = torch.zeros(3, 3, 3)  # an all-zero kernel keeps a valid colour scale
    weight[1, 1, 1] = 2.0
    fig = plots.plot_filters(weight.numpy(), save_as="filters")
    assert len(fig.axes) == 3
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)
    assert fig.axes[1].images[0].get_clim() == (-2.0, 2.0)
    assert (headless_run_dir / "filters.png").stat().st_size > 0


def test_filters_refuse_a_layer_with_several_input_channels():
    with pytest.raises(ValueError, match=r"one input channel.*\(4, 6, 5, 5\).*conv1"):
        plots.plot_filters(nn.Conv2d(6, 4, 5).weight)


# --- feature maps ---------------------------------------------------------------------------

def test_feature_maps_are_the_layers_outputs_for_that_image():
    torch.manual_seed(0)
    model, image = TwoConvs(), an_image()
    maps = plots.feature_maps(model, image, ["conv1", "conv2"])
    assert {name: m.shape for name, m in maps.items()} == {"conv1": (6, 24, 24),
                                                            "conv2": (20, 10, 10)}
    with torch.no_grad():
        conv1 = model.conv1(image[None, None])
        conv2 = model(image[None])
    np.testing.assert_allclose(maps["conv1"], conv1[0].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(maps["conv2"], conv2[0].numpy(), rtol=1e-6, atol=1e-6)


def test_feature_maps_leave_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.5))
    model.train()
    maps = plots.feature_maps(model, an_image().reshape(784), ["0", "1"])  # a flat image
    assert maps["0"].shape == (4, 26, 26)
    assert model.training and all(m.training for m in model.modules())
    assert not model[0]._forward_hooks and not model[1]._forward_hooks
    np.testing.assert_array_equal(maps["1"], maps["0"])  # dropout ran in eval mode: identity


def test_feature_maps_name_the_layers_a_model_has():
    with pytest.raises(ValueError, match=r"\['conv3'\].*'conv1', 'pool', 'conv2'"):
        plots.feature_maps(TwoConvs(), an_image(), ["conv1", "conv3"])


def test_feature_maps_figure_one_axes_per_channel_shown(headless_run_dir):
    torch.manual_seed(0)
    model, image = TwoConvs(), an_image()
    fig = plots.plot_feature_maps(model, image.unsqueeze(0), ["conv1", "conv2"],
                                  max_channels=16, columns=8, save_as="maps")
    # the input, 6 maps of conv1 (one row of 8), the first 16 of conv2's 20 (two rows)
    assert len(fig.axes) == 1 + 6 + 16
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), image.numpy())
    assert fig.axes[0].get_title() == "input"
    shapes = [ax.images[0].get_array().shape for ax in fig.axes[1:]]
    assert shapes == [(24, 24)] * 6 + [(10, 10)] * 16
    assert fig.axes[1].get_ylabel() == "conv1\n6 × 24 × 24"
    assert fig.axes[7].get_ylabel() == "conv2\n20 × 10 × 10"
    assert [ax.get_title() for ax in fig.axes[7:]] == [str(c) for c in range(16)]
    assert (headless_run_dir / "maps.png").stat().st_size > 0
