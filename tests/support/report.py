"""Reading a report document in tests: the check of a probe, the top cause, error-level causes."""

from __future__ import annotations

from typing import Any


def top(doc: dict[str, Any]) -> dict[str, Any]:
    diagnosis: list[dict[str, Any]] = doc["diagnosis"]
    assert diagnosis, "no diagnosis"
    return diagnosis[0]


def check_of(doc: dict[str, Any], probe_id: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == probe_id)


def errors(doc: dict[str, Any]) -> list[str]:
    return [d["cause"] for d in doc["diagnosis"] if d["severity"] in ("error", "critical")]


def commands(diag: dict[str, Any]) -> list[str]:
    return [c for step in diag["fix"] for c in step["commands"]]
