"""The policy artifact contract between training and the live path (`tradingd-policy/1`).

An artifact is a zip of numpy arrays: the policy network's layers (`weight_<i>`, `bias_<i>`, float32)
and a JSON `metadata` document (activations, feature set and schema hash, normalisation statistics,
action targets, decision threshold, provenance). Written with fixed timestamps, so the same network
and metadata give the same bytes and the same SHA-256 checksum.

Loading verifies, in this order, before anything is trusted: the checksum recorded with the artifact,
the format, and that the artifact was trained on the feature schema the caller runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.limit_orders import ENTRY_KINDS, EntryKind
from features.normalization import NormalizationStats
from features.spec import FeatureSetSpec

FORMAT = "tradingd-policy/1"
ACTIVATIONS = ("tanh", "relu", "linear")
_EPOCH = (1980, 1, 1, 0, 0, 0)
Floats32 = npt.NDArray[np.float32]


class ArtifactError(ValueError):
    """The artifact cannot be used: tampered, malformed, or trained on another feature schema."""


@dataclass(frozen=True, eq=False)
class Layer:
    weight: Floats32
    """Shape (inputs, outputs): `x @ weight + bias`."""
    bias: Floats32
    activation: str


@dataclass(frozen=True, eq=False)
class PolicyArtifact:
    layers: tuple[Layer, ...]
    feature_set: str
    feature_schema_hash: str
    market_features: tuple[str, ...]
    state_features: tuple[str, ...]
    normalization: NormalizationStats
    targets: tuple[float, ...]
    """The target position of each action (signed fractions of the maximum position)."""
    decision_threshold: float
    provenance: Mapping[str, Any]
    """Agent, version, dataset, algorithm, training metrics and code version: recorded, not interpreted."""
    entries: tuple[EntryKind, ...] = ()
    """How each action enters (`market` or `limit`, one per target); empty: every action at market (an
    agent without limit entries, whose artifact does not record them)."""

    def __post_init__(self) -> None:
        if not self.layers:
            raise ArtifactError("an artifact needs at least one layer")
        inputs = len(self.market_features) + len(self.state_features)
        if self.layers[0].weight.shape[0] != inputs:
            raise ArtifactError(f"the first layer takes {self.layers[0].weight.shape[0]} inputs, not {inputs}")
        for previous, layer in zip(self.layers, self.layers[1:], strict=False):
            if previous.weight.shape[1] != layer.weight.shape[0]:
                raise ArtifactError("consecutive layers do not connect")
        for layer in self.layers:
            if layer.bias.shape != (layer.weight.shape[1],) or layer.activation not in ACTIVATIONS:
                raise ArtifactError("a layer has a wrong bias shape or an unknown activation")
        if self.layers[-1].weight.shape[1] != len(self.targets):
            raise ArtifactError(
                f"the network has {self.layers[-1].weight.shape[1]} outputs for {len(self.targets)} actions"
            )
        if self.entries and (len(self.entries) != len(self.targets) or not set(self.entries) <= set(ENTRY_KINDS)):
            raise ArtifactError(f"the artifact's entries {list(self.entries)} do not name one kind per action")
        if self.normalization.names != self.market_features:
            raise ArtifactError("the normalisation statistics do not cover the market features in order")

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "activations": [layer.activation for layer in self.layers],
            "feature_set": self.feature_set,
            "feature_schema_hash": self.feature_schema_hash,
            "market_features": list(self.market_features),
            "state_features": list(self.state_features),
            "normalization": self.normalization.to_json(),
            "targets": list(self.targets),
            "decision_threshold": self.decision_threshold,
            "provenance": dict(self.provenance),
            **({"entries": list(self.entries)} if self.entries else {}),
        }

    def entry(self, action: int) -> EntryKind:
        """How `action` enters a position."""
        return self.entries[action] if self.entries else "market"

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for i, layer in enumerate(self.layers):
                _write_array(archive, f"weight_{i}", layer.weight)
                _write_array(archive, f"bias_{i}", layer.bias)
            document = json.dumps(self.metadata(), sort_keys=True, separators=(",", ":")).encode()
            archive.writestr(zipfile.ZipInfo("metadata.json", _EPOCH), document)
        return buffer.getvalue()

    def check_schema(self, spec: FeatureSetSpec) -> None:
        """Refuse to run on features other than those the policy was trained on."""
        if self.feature_schema_hash != spec.schema_hash or self.market_features != spec.market_features:
            raise ArtifactError(
                f"the artifact was trained on feature set {self.feature_set} (schema {self.feature_schema_hash[:12]}), "
                f"but the running feature set is {spec.name} (schema {spec.schema_hash[:12]})"
            )


def checksum(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def load_artifact(content: bytes, expected_checksum: str, spec: FeatureSetSpec | None = None) -> PolicyArtifact:
    """Verify and decode an artifact; with `spec`, also refuse a feature-schema mismatch."""
    actual = checksum(content)
    if actual != expected_checksum:
        raise ArtifactError(
            f"checksum mismatch: the artifact is {actual[:12]}..., its record says {expected_checksum[:12]}..."
        )
    try:
        artifact = _decode(content)
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as error:
        raise ArtifactError(f"not a {FORMAT} artifact: {error}") from None
    if spec is not None:
        artifact.check_schema(spec)
    return artifact


def _decode(content: bytes) -> PolicyArtifact:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        meta = json.loads(archive.read("metadata.json"))
        if meta.get("format") != FORMAT:
            raise ArtifactError(f"unknown artifact format {meta.get('format')!r}; expected {FORMAT}")
        activations: Sequence[str] = meta["activations"]
        layers = tuple(
            Layer(_read_array(archive, f"weight_{i}"), _read_array(archive, f"bias_{i}"), str(activation))
            for i, activation in enumerate(activations)
        )
    return PolicyArtifact(
        layers=layers,
        feature_set=str(meta["feature_set"]),
        feature_schema_hash=str(meta["feature_schema_hash"]),
        market_features=tuple(meta["market_features"]),
        state_features=tuple(meta["state_features"]),
        normalization=NormalizationStats.from_json(meta["normalization"]),
        targets=tuple(float(t) for t in meta["targets"]),
        decision_threshold=float(meta["decision_threshold"]),
        provenance=meta["provenance"],
        entries=tuple(meta.get("entries", ())),
    )


def _write_array(archive: zipfile.ZipFile, name: str, array: npt.NDArray[Any]) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    archive.writestr(zipfile.ZipInfo(f"{name}.npy", _EPOCH), buffer.getvalue())


def _read_array(archive: zipfile.ZipFile, name: str) -> Floats32:
    array = np.lib.format.read_array(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
    if array.dtype != np.dtype("<f4"):
        raise ArtifactError(f"{name} is {array.dtype}, not float32")
    return np.asarray(array, dtype=np.float32)
