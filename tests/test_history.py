"""shared.history.History records what it is given, in order, and refuses what it cannot."""
import numpy as np
import pytest
import torch

from shared.history import History


def two_epochs() -> History:
    h = History()
    h.record(loss=0.5, accuracy=0.8, val_loss=0.6, val_accuracy=0.75)
    h.record(loss=0.25, accuracy=0.9, val_loss=0.4, val_accuracy=0.85)
    return h


def test_records_each_epoch_in_order():
    h = two_epochs()
    assert len(h) == 2
    assert h.keys() == History.KEYS == ("loss", "accuracy", "val_loss", "val_accuracy")
    assert h["loss"] == [0.5, 0.25]
    assert h["val_accuracy"] == [0.75, 0.85]
    assert h.last("accuracy") == 0.9
    assert h.to_dict() == {"loss": [0.5, 0.25], "accuracy": [0.8, 0.9],
                           "val_loss": [0.6, 0.4], "val_accuracy": [0.75, 0.85]}


def test_empty_history():
    h = History()
    assert len(h) == 0 and h.keys() == () and h.to_dict() == {}
    assert repr(h) == "History(0 epochs)"


def test_tensor_and_numpy_scalars_become_plain_floats():
    h = History()
    h.record(loss=torch.tensor(0.5, requires_grad=True), accuracy=np.float32(0.25))
    assert h["loss"] == [0.5] and h["accuracy"] == [0.25]
    assert all(type(v) is float for v in h["loss"] + h["accuracy"])
    assert h.keys() == ("loss", "accuracy")  # a subset of KEYS is fine


def test_keys_follow_KEYS_order_whatever_the_call_order():
    h = History()
    h.record(val_accuracy=0.1, loss=2.0)
    assert h.keys() == ("loss", "val_accuracy")


def test_returned_lists_are_copies():
    h = two_epochs()
    h["loss"].append(99.0)
    h.to_dict()["accuracy"].clear()
    assert h["loss"] == [0.5, 0.25] and h["accuracy"] == [0.8, 0.9]


def test_unknown_key_is_rejected_with_the_allowed_keys_named():
    h = History()
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['acc'\].*val_accuracy"):
        h.record(loss=0.1, acc=0.9)
    assert len(h) == 0 and h.keys() == ()


def test_empty_record_is_rejected():
    with pytest.raises(ValueError, match="at least one metric"):
        History().record()


def test_every_epoch_must_record_the_same_keys():
    h = two_epochs()
    with pytest.raises(ValueError, match="same metrics"):
        h.record(loss=0.1, accuracy=0.95)
    assert len(h) == 2 and h["loss"] == [0.5, 0.25]


def test_non_scalar_value_is_rejected_and_nothing_is_appended():
    h = History()
    h.record(loss=1.0, accuracy=0.5)
    with pytest.raises(ValueError, match="accuracy must be a single number"):
        h.record(loss=0.5, accuracy=torch.tensor([0.1, 0.2]))
    assert h["loss"] == [1.0] and h["accuracy"] == [0.5]


def test_missing_key_raises_key_error():
    h = History()
    h.record(loss=1.0)
    with pytest.raises(KeyError, match="val_loss"):
        h["val_loss"]
    assert "loss" in h and "val_loss" not in h


def test_dict_conversion_and_repr():
    h = two_epochs()
    assert dict(h) == h.to_dict()
    assert repr(h) == ("History(2 epochs; last: loss=0.2500, accuracy=0.9000, "
                       "val_loss=0.4000, val_accuracy=0.8500)")
