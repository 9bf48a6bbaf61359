"""The scenario matrix: each fault diagnosed with the expected cause first, and each healthy
variant free of error-level causes (tests/scenarios.py builds them)."""

from __future__ import annotations

import pytest

from tests.scenarios import SCENARIOS, Scenario, run_scenario

FAULTS = [pytest.param(s, id=s.id, marks=[pytest.mark.netns] if s.netns else [])
          for s in SCENARIOS]
HEALTHY = [pytest.param(s, id=f"{s.id}-healthy", marks=[pytest.mark.netns] if s.netns else [])
           for s in SCENARIOS if s.healthy is not None]


@pytest.mark.parametrize("scenario", FAULTS)
def test_expected_cause_ranks_first(scenario: Scenario) -> None:
    result = run_scenario(scenario)
    assert (result.top, result.code) == (scenario.expected, scenario.code), \
        [(d["cause"], d["severity"], d["code"]) for d in result.doc["diagnosis"]]
    assert result.doc["summary"]["top_cause"] == scenario.expected
    if scenario.expected in ("unspecified-address", "gpu-offload", "ipv6-localhost"):
        assert result.exit_code == 0  # warnings: this client's calls still work
    else:
        assert result.exit_code == 1


@pytest.mark.parametrize("scenario", HEALTHY)
def test_healthy_variant_raises_no_error(scenario: Scenario) -> None:
    result = run_scenario(scenario, "healthy")
    assert result.error_causes == [], [
        (d["cause"], d["severity"], d["explanation"]) for d in result.doc["diagnosis"]]
    assert result.exit_code == 0
