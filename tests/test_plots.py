"""shared.plots renders headless: axes, titles, red errors, counts, saved PNGs, summaries."""
import os

os.environ["MPLBACKEND"] = "Agg"  # before pyplot is imported, here or in shared.plots

import subprocess  # noqa: E402
import sys  # noqa: E402

import matplotlib  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from shared import plots  # noqa: E402
from shared.history import History  # noqa: E402

RED = mcolors.to_rgba("red")


@pytest.fixture(autouse=True)
def headless_run_dir(tmp_path, monkeypatch):
    """Agg backend, figures saved under tmp_path, every figure closed afterwards."""
    plt.switch_backend("Agg")
    monkeypatch.setattr(plots, "_run_dir", None)
    monkeypatch.delenv("MNIST_RUN_DIR", raising=False)
    plots.run_dir(tmp_path)
    yield tmp_path
    plt.close("all")


def digits(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 28, 28, generator=g), torch.arange(n) % 10


def captions(fig):
    """(text, is red) under each image axes, in grid order."""
    return [(ax.xaxis.label.get_text(), mcolors.to_rgba(ax.xaxis.label.get_color()) == RED)
            for ax in fig.axes]


# --- plot_images --------------------------------------------------------------------------

def test_images_show_labels_and_mark_wrong_predictions_in_red():
    x, y = digits(6)
    y_pred = y.clone()
    y_pred[[1, 4]] = torch.tensor([7, 9])
    fig = plots.plot_images(x, y, y_pred=y_pred, columns=4)
    assert len(fig.axes) == 6  # the two empty cells of the 2 x 4 grid are removed
    assert captions(fig) == [("0", False), ("7 (1)", True), ("2", False),
                             ("3", False), ("9 (4)", True), ("5", False)]
    red_frames = [mcolors.to_rgba(ax.spines["top"].get_edgecolor()) == RED for ax in fig.axes]
    assert red_frames == [False, True, False, False, True, False]


def test_images_without_predictions_have_no_red():
    x, y = digits(5)
    fig = plots.plot_images(x.numpy(), y.numpy(), indices=[4, 0, 2])
    assert captions(fig) == [("4", False), ("0", False), ("2", False)]


def test_images_accept_flat_and_channel_shapes_and_masks():
    x, y = digits(4)
    assert len(plots.plot_images(x.reshape(4, 784), y).axes) == 4
    fig = plots.plot_images(x.unsqueeze(1), y, indices=y > 1)
    assert [text for text, _ in captions(fig)] == ["2", "3"]
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), x[2].numpy())


def test_images_colorbar_adds_one_axes_per_image():
    x, y = digits(1)
    fig = plots.plot_images(x, y, indices=[0], colorbar=True)
    assert len(fig.axes) == 2


def test_images_refuse_a_huge_grid():
    with pytest.raises(ValueError, match="indices"):
        plots.plot_images(torch.zeros(plots.MAX_IMAGES + 1, 28, 28), None)


# --- plot_history ---------------------------------------------------------------------------

def test_history_plots_train_and_held_out_curves():
    h = History()
    for loss, acc in [(1.0, 0.5), (0.5, 0.8), (0.3, 0.9)]:
        h.record(loss=loss, accuracy=acc, val_loss=loss + 0.1, val_accuracy=acc - 0.1)
    fig = plots.plot_history(h, held_out="test")
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == [
        "train", "test", "ln 10 = guessing (2.30, far above)"]  # 1.1 at most: half of ln 10
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()][:2] == ["train", "test"]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3]
    assert list(loss_ax.lines[0].get_ydata()) == [1.0, 0.5, 0.3]
    np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), [0.4, 0.7, 0.8])


def test_history_curves_are_named_validation_by_default():
    fig = plots.plot_history({"loss": [1.0], "val_loss": [1.1]})
    assert [line.get_label() for line in fig.axes[0].lines][:2] == ["train", "validation"]


def test_a_stuck_loss_looks_stuck():
    """A loss that stays at 2.293 (a model that learns nothing) must not look like it falls:
    no axis offset ("1e-5 + 2.293"), and the dashed ln 10 line sits right beside it."""
    stuck = [2.29305, 2.29303, 2.29302, 2.29301, 2.29300]
    fig = plots.plot_history({"loss": stuck, "accuracy": [0.11] * 5})
    fig.canvas.draw()
    for ax in fig.axes:
        formatter = ax.yaxis.get_major_formatter()
        assert isinstance(formatter, matplotlib.ticker.ScalarFormatter)
        assert not formatter.get_useOffset() and formatter.get_offset() == ""
    [chance] = [line for line in fig.axes[0].lines if line.get_label().startswith("ln 10")]
    assert chance.get_linestyle() == "--"
    np.testing.assert_allclose(chance.get_ydata(), [np.log(10)] * 2)
    low, high = fig.axes[0].get_ylim()
    assert low <= min(stuck) and np.log(10) <= high


LESSON_01_RUN = {  # lesson 01's 15 epochs, as measured: the test loss is lowest at epoch 7
    "loss": [0.1102, 0.0707, 0.057, 0.0378, 0.0271, 0.0195, 0.0147, 0.0129, 0.0099, 0.0085,
             0.0064, 0.0051, 0.0047, 0.0045, 0.0039],
    "val_loss": [0.1246, 0.0876, 0.0885, 0.0724, 0.072, 0.0691, 0.0642, 0.0656, 0.0664, 0.0662,
                 0.0667, 0.0684, 0.0696, 0.0703, 0.0707]}


def test_losses_far_below_guessing_fill_the_axis_and_the_lowest_test_loss_is_marked():
    """Issue 19: a line at ln 10 stretched the axis to 2.3, both curves lay flat at the bottom
    and the test loss creeping back up could not be seen."""
    fig = plots.plot_history(LESSON_01_RUN, held_out="test")
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert low == 0 and max(LESSON_01_RUN["val_loss"]) <= high < 0.2
    rise = LESSON_01_RUN["val_loss"][-1] - min(LESSON_01_RUN["val_loss"])
    assert rise / (high - low) > 0.04  # the creep up is a visible part of the axis
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "ln 10 = guessing (2.30, far above)" in labels and "lowest test loss" in labels
    [lowest] = [line for line in ax.lines if line.get_label() == "lowest test loss"]
    assert list(lowest.get_xdata()) == [7, 7]


def test_no_lowest_mark_while_the_held_out_loss_still_falls():
    fig = plots.plot_history({"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.4]})
    assert not [line for line in fig.axes[0].lines if line.get_label().startswith("lowest")]


def test_history_accepts_a_dict_with_training_keys_only():
    fig = plots.plot_history({"loss": [2.0, 1.0], "accuracy": [0.1, 0.6]})
    assert [len(ax.lines) for ax in fig.axes] == [2, 1]  # the loss panel adds the ln 10 line


# --- confusion matrix -----------------------------------------------------------------------

Y_TRUE = [0, 0, 1, 2, 2, 2]
Y_PRED = [0, 1, 1, 2, 0, 2]


def test_confusion_counts_match_a_hand_computed_example():
    expected = np.zeros((10, 10), dtype=int)
    expected[0, 0] = expected[0, 1] = expected[1, 1] = expected[2, 0] = 1
    expected[2, 2] = 2
    np.testing.assert_array_equal(plots.confusion_matrix(Y_TRUE, Y_PRED), expected)
    from_tensors = plots.confusion_matrix(torch.tensor(Y_TRUE), torch.tensor(Y_PRED))
    np.testing.assert_array_equal(from_tensors, expected)
    logits = torch.nn.functional.one_hot(torch.tensor(Y_PRED), 10).float() * 5
    np.testing.assert_array_equal(plots.confusion_matrix(Y_TRUE, logits), expected)


def test_confusion_normalised_rows_sum_to_one():
    m = plots.confusion_matrix(Y_TRUE, Y_PRED, normalize=True)
    np.testing.assert_allclose(m.sum(axis=1), [1, 1, 1] + [0] * 7)  # absent classes stay 0
    assert m[2, 2] == pytest.approx(2 / 3)


def test_confusion_rejects_labels_out_of_range_and_length_mismatch():
    with pytest.raises(ValueError, match="0..9"):
        plots.confusion_matrix([0, 10], [0, 1])
    with pytest.raises(ValueError, match="length"):
        plots.confusion_matrix([0, 1], [0])


def test_confusion_figure_shows_the_counts():
    fig = plots.plot_confusion_matrix(np.array(Y_TRUE), torch.tensor(Y_PRED))
    ax, colorbar_ax = fig.axes
    assert ax.get_title().startswith("Confusion matrix\n")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted", "True")
    diagonal, errors = ax.images
    m = plots.confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(errors.get_array().filled(0), m - np.diag(np.diag(m)))
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "1", "1", "2"]


def test_a_few_errors_stand_out_beside_a_thousand_right_answers():
    """Issue 19: on one colour scale from 0 to 1,000, lesson 01's 3 and 7 errors were all the
    palest colour (normalised, 0.00 or 0.01): the errors have a scale of their own."""
    y_true = np.repeat(np.arange(10), 1000)
    y_pred = y_true.copy()
    y_pred[:3], y_pred[1000:1007] = 6, 7  # three 0s taken for 6, seven 1s for 7
    ax = plots.plot_confusion_matrix(y_true, y_pred).axes[0]
    errors = ax.images[1]
    assert errors.get_clim() == (0, 7)  # the most frequent error is the darkest red
    assert errors.cmap(errors.norm(3))[:3] != errors.cmap(errors.norm(0))[:3]
    assert {"3", "7", "997", "993"} <= {t.get_text() for t in ax.texts}


def test_confusion_figure_normalised():
    fig = plots.plot_confusion_matrix(Y_TRUE, Y_PRED, normalize=True)
    ax = fig.axes[0]
    assert "normalised" in ax.get_title()
    assert "0.67" in [t.get_text() for t in ax.texts]


# --- doubts ---------------------------------------------------------------------------------

def doubtful_batch():
    """Six digits; #3 and #1 are the least confident, #3 wrongly."""
    probs = torch.full((6, 10), 0.01)
    probs[torch.arange(6), torch.arange(6)] = 0.91
    probs[3] = torch.tensor([0.0, 0.0, 0.0, 0.3, 0.0, 0.4, 0.3, 0.0, 0.0, 0.0])
    probs[1] = torch.tensor([0.0, 0.5, 0.45, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    return digits(6)[0], probs, torch.arange(6)


def test_least_confident_picks_the_lowest_top_probability():
    _, probs, _ = doubtful_batch()
    assert list(plots.least_confident(probs, 2)) == [3, 1]


def test_doubts_show_image_and_probability_bars_per_digit():
    x, probs, y = doubtful_batch()
    fig = plots.plot_doubts(x, probs, y, n=2)
    assert len(fig.axes) == 4
    image3, bars3, image1, bars1 = fig.axes
    assert (image3.get_title(), mcolors.to_rgba(image3.title.get_color()) == RED) == ("5 (3)", True)
    assert (image1.get_title(), mcolors.to_rgba(image1.title.get_color()) == RED) == ("1", False)
    np.testing.assert_allclose([bar.get_height() for bar in bars3.patches], probs[3].numpy())
    assert bars3.patches[3].get_facecolor() == mcolors.to_rgba("tab:green")  # true class
    assert bars3.patches[5].get_facecolor() == mcolors.to_rgba("tab:red")    # wrong guess


def test_labels_stay_legible_when_jupyterlab_shrinks_a_wide_figure():
    """Issue 19: captions of 10 points and bar labels of 7, in figures 14 inches wide."""
    x, probs, y = doubtful_batch()
    images = plots.plot_images(x, y, y_pred=probs.argmax(dim=1), columns=12)
    assert min(ax.xaxis.label.get_fontsize() for ax in images.axes) >= 12
    image3, bars3, *_ = plots.plot_doubts(x, probs, y, n=2).axes
    assert image3.title.get_fontsize() >= 12 and image3.xaxis.label.get_fontsize() >= 10
    assert min(t.get_fontsize() for t in bars3.get_xticklabels()) >= 10


def test_doubts_reject_logits():
    x, _, y = doubtful_batch()
    with pytest.raises(ValueError, match="softmax"):
        plots.plot_doubts(x, torch.randn(6, 10), y)


# --- saving ---------------------------------------------------------------------------------

def test_save_as_writes_a_png_into_the_run_dir(headless_run_dir):
    x, y = digits(3)
    fig = plots.plot_images(x, y, save_as="digits")
    assert isinstance(fig, matplotlib.figure.Figure)
    png = headless_run_dir / "digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plots.plot_confusion_matrix(Y_TRUE, Y_PRED, save_as="confusion.png")
    assert (headless_run_dir / "confusion.png").is_file()


def test_run_dir_set_and_env(tmp_path, monkeypatch):
    assert plots.run_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and plots.run_dir() == tmp_path / "a" / "b"
    monkeypatch.setattr(plots, "_run_dir", None)
    monkeypatch.setenv("MNIST_RUN_DIR", str(tmp_path / "env"))
    assert plots.run_dir() == tmp_path / "env"


def test_by_default_figures_go_to_runs_beside_the_notebook(tmp_path, monkeypatch):
    """Issue 19: a notebook's kernel runs in its folder (work/ in `make student`, JupyterLab's
    root): its figures must be there, not in the repository's runs/, out of JupyterLab's reach."""
    monkeypatch.setattr(plots, "_run_dir", None)
    plots._default_run_dir.cache_clear()
    monkeypatch.chdir(tmp_path)
    try:
        folder = plots.run_dir()
    finally:
        plots._default_run_dir.cache_clear()
    assert folder.parent == tmp_path.resolve() / "runs" and folder.is_dir()


def test_import_leaves_the_backend_alone():
    """Jupyter sets MPLBACKEND to its inline backend; importing shared.plots must keep it."""
    env = {**os.environ, "MPLBACKEND": "svg"}
    code = "import shared.plots, matplotlib; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "svg"


# --- model summary --------------------------------------------------------------------------

def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(),
                         nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))


def test_summary_counts_the_mlp_parameters():
    s = plots.model_summary(mlp())
    assert s.total_params == s.trainable_params == 89_610
    assert [row.name for row in s.rows] == ["0", "1", "2", "3", "4", "5"]
    assert [row.output_shape for row in s.rows] == ["(B, 784)", "(B, 100)", "(B, 100)",
                                                    "(B, 100)", "(B, 100)", "(B, 10)"]
    assert [row.params for row in s.rows] == [0, 78_500, 0, 10_100, 0, 1_010]
    text = str(s)
    assert "Linear" in text and "Total params: 89,610" in text and "78,500" in text


def test_summary_of_a_model_with_a_frozen_layer():
    model = mlp()
    model[1].requires_grad_(False)
    s = plots.model_summary(model)
    assert s.total_params == 89_610
    assert s.trainable_params == 89_610 - 78_500
    assert "Non-trainable params: 78,500" in str(s)


class TwoPath(nn.Module):
    """A custom module: its own parameter, a nested block, flat (B, 784) input."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.body = nn.Sequential(nn.Linear(784, 10), nn.Dropout(0.5))

    def forward(self, x):
        return self.body(x.reshape(len(x), -1)) * self.scale


def test_summary_of_a_custom_module_restores_its_modes():
    model = TwoPath().train()
    model.body[1].eval()
    s = plots.model_summary(model, input_shape=(784,))
    assert s.total_params == 784 * 10 + 10 + 1
    assert {row.name: row.params for row in s.rows} == {"body.0": 7850, "body.1": 0, "TwoPath": 1}
    assert model.training and model.body[0].training and not model.body[1].training
