"""``explain retry`` (offline) and ``check --client-retries`` against the emulator: a cold load
of 2.4 s, a client timeout of 1 s and 2 retries — every try aborts the load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import CliRun
from tests.support.report import check_of


def test_explain_retry_text(cli: Callable[..., CliRun]) -> None:
    run = cli("explain", "retry")
    assert run.code == 0, run.stderr
    assert "1, 2, 4, 8, 16, 30, 30 s" in run.stdout
    assert "429" in run.stdout


def test_explain_retry_json(cli: Callable[..., CliRun]) -> None:
    from ollama_doctor import retry

    run = cli("explain", "retry", "--json")
    assert run.code == 0
    assert run.json() == retry.policy()


def test_client_retries_reproduce_the_aborted_loads(emulator: Callable[..., Any],
                                                    cli: Callable[..., CliRun]) -> None:
    emu = emulator(cold_load="2.4")
    run = cli("check", "--host", emu.url, "-m", "llama3.2", "--cold", "--client-timeout", "1",
              "--client-retries", "2", "--json", timeout=120)
    assert run.code == 1, run.stderr
    doc = run.json()
    retry = check_of(doc, "retry")
    assert retry["status"] == "fail"
    (finding,) = retry["findings"]
    assert finding["cause"] == "slow-model-load"
    verdict = finding["evidence"]["verdict"]
    assert verdict["succeeds"] is False
    assert [a["outcome"] for a in verdict["attempts"]] == ["load aborted"] * 3
    assert verdict["recommended_timeout"] >= 2.4
    diag = next(d for d in doc["diagnosis"] if d["cause"] == "slow-model-load")
    assert diag["retry"]["helps"] is False
    assert "each of the 3 tries aborts the load" in diag["retry"]["advice"]
    assert "retry" in diag["probes"]


def test_client_family_retries_are_the_default(emulator: Callable[..., Any],
                                               cli: Callable[..., CliRun]) -> None:
    """openai-python: 2 retries of its own; a 1 s timeout given."""
    emu = emulator(cold_load="2.4")
    run = cli("check", "--host", emu.url, "-m", "llama3.2", "--cold", "--client",
              "openai-python", "--client-timeout", "1", "--json",
              env={"OPENAI_API_KEY": "ollama"}, timeout=120)
    doc = run.json()
    verdict = check_of(doc, "retry")["facts"]["verdict"]
    assert check_of(doc, "retry")["facts"]["client_retries"] == 2
    assert len(verdict["attempts"]) == 3 and verdict["succeeds"] is False


def test_long_enough_timeout_succeeds(emulator: Callable[..., Any],
                                      cli: Callable[..., CliRun]) -> None:
    emu = emulator(cold_load="0.3")
    run = cli("check", "--host", emu.url, "-m", "llama3.2", "--cold", "--client-timeout", "5",
              "--client-retries", "2", "--json", timeout=120)
    doc = run.json()
    retry = check_of(doc, "retry")
    assert retry["status"] == "pass" and retry["findings"] == []
    assert retry["facts"]["verdict"]["succeeds"] is True


def test_client_retries_bad_value(cli: Callable[..., CliRun]) -> None:
    run = cli("check", "--client-retries", "-1", "--host", "http://127.0.0.1:9")
    assert run.code == 2 and "--client-retries" in run.stderr
