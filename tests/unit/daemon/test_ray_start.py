"""Ray's fixed 30 s node registration is retried; any other start-up failure is not."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from config import load_settings
from daemon import ray_runtime

TIMED_OUT = "The current node timed out during startup. This could happen because some of the raylet failed"


def _settings(tmp_path: Any) -> Any:
    return load_settings(environ={"TRADINGD_DATA_DIR": str(tmp_path)})


def _fake_ray(monkeypatch: pytest.MonkeyPatch, failures: list[BaseException]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    started = {"yes": False}

    def init(**kwargs: Any) -> None:
        calls.append(kwargs)
        if failures:
            raise failures.pop(0)
        started["yes"] = True

    monkeypatch.setattr(ray, "is_initialized", lambda: started["yes"])
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(ray_runtime, "_stop_children", lambda: None)
    return calls


def test_a_node_that_registers_late_is_started_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    calls = _fake_ray(monkeypatch, [Exception(TIMED_OUT), Exception(TIMED_OUT)])
    ray_runtime.start_ray(_settings(tmp_path))
    assert len(calls) == 3


def test_the_retries_are_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    calls = _fake_ray(monkeypatch, [Exception(TIMED_OUT)] * ray_runtime.NODE_START_ATTEMPTS)
    with pytest.raises(Exception, match="timed out during startup"):
        ray_runtime.start_ray(_settings(tmp_path))
    assert len(calls) == ray_runtime.NODE_START_ATTEMPTS


def test_another_failure_is_not_retried(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    calls = _fake_ray(monkeypatch, [ValueError("bad resources")])
    with pytest.raises(ValueError, match="bad resources"):
        ray_runtime.start_ray(_settings(tmp_path))
    assert len(calls) == 1
