"""The exported policy network in plain numpy, float32 like the torch module it was exported from.

One decision is a few small matrix products: about 10 us on one thread, against about 30 us for the
same network in torch (benchmarks/agents.py), and no torch in the live actors (a Ray actor that
imports torch costs about 260 MiB more)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from actors.policy.artifact import Layer

Floats32 = npt.NDArray[np.float32]


class NumpyNetwork:
    def __init__(self, layers: tuple[Layer, ...]) -> None:
        self._layers = tuple((layer.weight, layer.bias, layer.activation) for layer in layers)

    def logits(self, inputs: Floats32) -> Floats32:
        """Inputs: one vector or a batch of rows."""
        x = inputs.astype(np.float32, copy=False)
        for weight, bias, activation in self._layers:
            x = x @ weight + bias
            if activation == "tanh":
                x = np.tanh(x)
            elif activation == "relu":
                x = np.maximum(x, np.float32(0))
        return x


def softmax(logits: Floats32) -> npt.NDArray[np.float64]:
    shifted = logits.astype(np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=-1, keepdims=True)
