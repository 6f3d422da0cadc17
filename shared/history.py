"""Per-epoch training metrics: written by ``fit``, read by ``plot_history``."""
from __future__ import annotations


class History:
    """Per-epoch metrics: ``h.record(loss=..., accuracy=..., val_loss=..., val_accuracy=...)``.

    Every epoch records the same keys, so ``h["loss"][e]`` and ``h["val_loss"][e]`` always
    belong to the same epoch ``e``.
    """

    KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")

    def __init__(self):
        self._metrics: dict[str, list[float]] = {}

    def record(self, **metrics) -> None:
        """Append one epoch. Values may be floats, numpy scalars or one-element tensors."""
        unknown = sorted(set(metrics) - set(self.KEYS))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}: History records only {self.KEYS}")
        if not metrics:
            raise ValueError("record() needs at least one metric, e.g. record(loss=0.31)")
        if self._metrics and set(metrics) != set(self._metrics):
            raise ValueError(f"every epoch must record the same metrics: expected "
                             f"{list(self.keys())}, got {sorted(metrics)}")
        values = {key: _to_float(key, value) for key, value in metrics.items()}
        for key in self.KEYS:  # converted first, so a bad value leaves the history unchanged
            if key in values:
                self._metrics.setdefault(key, []).append(values[key])

    def __getitem__(self, key: str) -> list[float]:
        if key not in self._metrics:
            raise KeyError(f"{key!r} was not recorded; recorded metrics: {list(self.keys())}")
        return list(self._metrics[key])  # a copy: the history stays as recorded

    def keys(self) -> tuple[str, ...]:
        return tuple(self._metrics)

    def __iter__(self):
        return iter(self.keys())

    def __contains__(self, key) -> bool:
        return key in self._metrics

    def __len__(self) -> int:
        """The number of epochs recorded."""
        return len(next(iter(self._metrics.values()), []))

    def to_dict(self) -> dict[str, list[float]]:
        return {key: list(values) for key, values in self._metrics.items()}

    def last(self, key: str) -> float:
        """The value of ``key`` at the latest epoch."""
        return self[key][-1]

    def __repr__(self) -> str:
        if not self._metrics:
            return "History(0 epochs)"
        last = ", ".join(f"{key}={values[-1]:.4f}" for key, values in self._metrics.items())
        return f"History({len(self)} epochs; last: {last})"


def _to_float(key: str, value) -> float:
    if hasattr(value, "detach"):  # a loss tensor still attached to its graph
        value = value.detach()
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{key} must be a single number, got {value!r}") from error
