"""Export a trained RLlib PPO module's policy network to the artifact's numpy layers, and prove the
export: the numpy network must choose the module's actions on real observations before an artifact
is recorded."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from policies.artifact import Layer
from policies.network import NumpyNetwork

_ACTIVATIONS = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu"}


class ExportError(RuntimeError):
    """The module is not a network we can export, or the export does not act like the module."""


def policy_layers(module: Any) -> tuple[Layer, ...]:
    """The actor's path through a default PPO module: its encoder MLP, then the policy head."""
    encoder = module.encoder
    actor = getattr(encoder, "actor_encoder", None) or getattr(encoder, "encoder", None)
    if actor is None or not hasattr(actor, "net") or not hasattr(module, "pi"):
        raise ExportError(f"cannot export {type(module).__name__}: expected an MLP encoder and a policy head")
    layers: list[Layer] = []
    for sequential in (actor.net.mlp, module.pi.net.mlp):
        for part in sequential:
            if isinstance(part, torch.nn.Linear):
                weight = part.weight.detach().cpu().numpy().T.astype(np.float32)
                bias = part.bias.detach().cpu().numpy().astype(np.float32)
                layers.append(Layer(np.ascontiguousarray(weight), bias, "linear"))
            elif type(part) in _ACTIVATIONS and layers and layers[-1].activation == "linear":
                last = layers[-1]
                layers[-1] = Layer(last.weight, last.bias, _ACTIVATIONS[type(part)])
            else:
                raise ExportError(f"cannot export a {type(part).__name__} layer")
    return tuple(layers)


def module_logits(module: Any, observations: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The RLlib module's action logits for a batch, as it computes them for inference."""
    with torch.no_grad():
        out = module.forward_inference({"obs": torch.from_numpy(np.ascontiguousarray(observations))})
    logits: npt.NDArray[np.float32] = out["action_dist_inputs"].cpu().numpy()
    return logits


def verify_export(module: Any, layers: tuple[Layer, ...], observations: npt.NDArray[np.float32]) -> dict[str, float]:
    """Greedy actions must agree on every observation whose top two logits are not a near tie (float32
    sums in another order may flip a tie); returns the agreement figures for the training metrics."""
    expected = module_logits(module, observations)
    got = NumpyNetwork(layers).logits(observations)
    difference = float(np.max(np.abs(expected - got)))
    ordered = np.sort(expected, axis=1)
    decisive = (ordered[:, -1] - ordered[:, -2]) > 1e-4
    same = np.argmax(expected, axis=1) == np.argmax(got, axis=1)
    if difference > 1e-4 or not same[decisive].all():
        raise ExportError(
            f"the exported network disagrees with the module: max logit difference {difference:.3g}, "
            f"{int((~same & decisive).sum())} different actions"
        )
    return {
        "export_observations": float(len(observations)),
        "export_max_logit_difference": difference,
        "export_action_agreement": float(same.mean()),
    }
