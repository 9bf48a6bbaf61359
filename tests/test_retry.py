"""Tests for ``retry``: the policy as data and text, ``judge``, and the cold-load case for real.

The emulator case uses small numbers (a 2.4 s load, a 1 s client timeout, 2 retries) with a
real httpx client making every try; the emulator's log shows each load aborted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_doctor.causes import CAUSES
from ollama_doctor.retry import (
    JITTER,
    NEVER_HELPS,
    RETRY_CODES,
    SCHEDULE,
    jittered,
    judge,
    policy,
    policy_text,
    recommended_timeout,
    total_seconds,
    wait_for,
)

ABORTED = "client connection closed before llama-server finished loading, aborting load"


def test_schedule_and_totals() -> None:
    assert SCHEDULE == (1, 2, 4, 8, 16, 30, 30)
    assert [wait_for(i) for i in range(9)] == [1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert total_seconds(7) == 91
    assert total_seconds(2) == 3
    assert total_seconds(0) == 0
    assert jittered(0, 0.0) == pytest.approx(1 - JITTER)
    assert jittered(6, 0.999999) == pytest.approx(30 * (1 + JITTER), rel=1e-5)


def test_policy_data() -> None:
    data = policy()
    assert set(data["retry_codes"]) == {"408", "429", "500", "502", "503", "504"}
    assert set(data["no_retry_codes"]) == {"400", "401", "403", "404", "405"}
    assert data["total_seconds"] == 91
    assert data["total_range_seconds"] == [72.8, 109.2]
    assert set(NEVER_HELPS) <= set(CAUSES)
    by_cause = {c["cause"]: c for c in data["causes"]}
    assert set(by_cause) == set(CAUSES)
    assert by_cause["slow-model-load"]["retry"] is False
    assert by_cause["high-latency"]["retry"] is True
    assert "aborts the load" in by_cause["slow-model-load"]["never_helps"]


def test_policy_text() -> None:
    text = policy_text()
    assert "wait 1, 2, 4, 8, 16, 30, 30 s" in text
    assert "Total: 91 s of waiting for 7 retries (72.8–109.2 s with jitter)" in text
    for code in RETRY_CODES:
        assert f"\n  {code} " in text
    assert "/api/pull resumes" in text
    assert "slow-model-load: a cold load longer than the client's timeout" in text


def test_judge_the_24_second_load() -> None:
    verdict = judge(24, 10, 2)
    assert verdict.to_dict() == {
        "succeeds": False,
        "cause": "slow-model-load",
        "message": "The model needs 24 s to load but the client gives up after 10 s: each of "
                   "the 3 tries aborts the load, so the call never succeeds (the client gives "
                   "up after 33 s).",
        "seconds": 33.0,
        "recommended_timeout": 30.0,
        "attempts": [
            {"number": 1, "start": 0.0, "end": 10.0, "outcome": "load aborted"},
            {"number": 2, "start": 11.0, "end": 21.0, "outcome": "load aborted"},
            {"number": 3, "start": 23.0, "end": 33.0, "outcome": "load aborted"},
        ],
        "advice": [
            "Set the client timeout to 30 s (it must outlast the 24 s load).",
            'Warm the model at start-up and keep it loaded: POST /api/generate {"model": '
            'MODEL, "keep_alive": "30m"} (an empty prompt only loads it).',
            "More retries do not help: each one starts the load from zero.",
        ],
    }
    fixed = judge(24, 30, 2)
    assert fixed.succeeds and fixed.cause is None
    assert [a.outcome for a in fixed.attempts] == ["succeeded"]
    # More retries never help while the timeout stays short.
    assert not judge(24, 10, 50).succeeds


@pytest.mark.parametrize(("load", "timeout", "succeeds", "advice_start"), [
    (5, None, True, "The client waits forever"),
    (25, 28, True, "The 28 s timeout leaves little margin"),
    (2.4, 3, True, "Warm the model"),
    (10, 10, False, "Set the client timeout to 15 s"),
    (100, 600, True, "Warm the model"),
])
def test_judge_table(load: float, timeout: float | None, succeeds: bool,
                     advice_start: str) -> None:
    verdict = judge(load, timeout, 2)
    assert verdict.succeeds is succeeds
    assert verdict.advice[0].startswith(advice_start)


def test_recommended_timeout_and_bad_input() -> None:
    assert [recommended_timeout(x) for x in (2.4, 24, 26, 90, 700)] == [3, 30, 45, 120, 900]
    with pytest.raises(ValueError, match="must be positive"):
        judge(-1, 10, 2)
    with pytest.raises(ValueError, match="must be positive"):
        judge(5, 0, 2)


def _tries(url: str, timeout: float, retries: int, backoff: float) -> tuple[int, list[str]]:
    """A client as the app has it: httpx, a timeout, retries on timeouts with backoff."""
    outcomes: list[str] = []
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        for i in range(retries + 1):
            try:
                r = client.post(f"{url}/api/generate",
                                json={"model": "llama3.2", "prompt": "hi", "stream": False})
                outcomes.append(str(r.status_code))
                return r.status_code, outcomes
            except httpx.TimeoutException:
                outcomes.append("timeout")
            if i < retries:
                time.sleep(backoff * wait_for(i))
    return 0, outcomes


def _aborts(log: Path, want: int, deadline: float = 10.0) -> int:
    end = time.monotonic() + deadline
    count = 0
    while time.monotonic() < end:
        count = log.read_text().count(ABORTED) if log.exists() else 0
        if count >= want:
            return count
        time.sleep(0.05)
    return count


def test_cold_load_longer_than_timeout_never_succeeds(emulator: Callable[..., Any],
                                                      tmp_path: Path) -> None:
    load, timeout, retries = 2.4, 1.0, 2
    verdict = judge(load, timeout, retries)
    assert not verdict.succeeds and len(verdict.attempts) == 3
    log = tmp_path / "ollama.log"
    emu = emulator(log_file=str(log), cold_load=str(load))
    status, outcomes = _tries(emu.url, timeout, retries, backoff=0.1)
    assert (status, outcomes) == (0, ["timeout", "timeout", "timeout"])
    # Every try reached the server and every try's load was aborted: none ever finished.
    assert [r.path for r in emu.requests] == ["/api/generate"] * 3
    assert _aborts(log, 3) == 3
    assert "llama-server started in" not in log.read_text()
    assert emu.loaded == {}


def test_timeout_from_the_verdict_succeeds(emulator: Callable[..., Any], tmp_path: Path) -> None:
    load, retries = 2.4, 2
    timeout = recommended_timeout(load)  # 3 s: load × 1.25, rounded up
    assert judge(load, timeout, retries).succeeds
    log = tmp_path / "ollama.log"
    emu = emulator(log_file=str(log), cold_load=str(load))
    status, outcomes = _tries(emu.url, timeout, retries, backoff=0.1)
    assert (status, outcomes) == (200, ["200"])
    assert ABORTED not in log.read_text()
    assert "llama-server started in" in log.read_text()
