"""End to end: a pasted client error is evidence the live run must answer (issue 9 §1).

The real CLI in a subprocess against the emulator on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema

from ollama_doctor.report import schema
from tests.conftest import CliRun

RATE = ("openai.RateLimitError: Error code: 429 - {'error': {'message': 'you (alice) have "
        "reached your hourly usage limit'}}")
OPENAI_401 = ('Traceback (most recent call last):\n  File "/v/site-packages/openai/'
              '_base_client.py", line 1047, in request\nopenai.AuthenticationError: Error '
              "code: 401 - {'error': {'message': 'unauthorized'}}")


def check(cli: Callable[..., CliRun], url: str, text: str, *args: str,
          env: dict[str, str] | None = None) -> tuple[CliRun, dict[str, Any]]:
    run = cli("check", "--host", url, "--error", text, "--json", "--timeout", "3", *args,
              env=env)
    doc = run.json()
    jsonschema.Draft202012Validator(schema()).validate(doc)
    return run, doc


def test_a_pasted_429_on_a_healthy_server_fails_the_run(cli: Callable[..., CliRun],
                                                      emulator: Callable[..., Any]) -> None:
    emu = emulator()
    run, doc = check(cli, emu.url, RATE)
    assert run.code == 1, run.stderr
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"], top["probes"]) == (
        "rate-limited", "error", 429, ["error-text"])
    assert (doc["summary"]["status"], doc["summary"]["top_cause"]) == ("failing", "rate-limited")
    assert doc["error_text"]["explained_by"]["verdict"] == "not-reproduced"
    assert doc["error_text"]["client"] == "openai-python"


def test_a_pasted_401_the_doctor_reproduces_as_that_client_is_confirmed(
        cli: Callable[..., CliRun], emulator: Callable[..., Any]) -> None:
    emu = emulator(auth="s3cret-token")
    # the doctor acts as openai-python (from the text), which does not send OLLAMA_API_KEY
    run, doc = check(cli, emu.url, OPENAI_401, env={"OLLAMA_API_KEY": "s3cret-token"})
    assert run.code == 1, run.stderr
    assert doc["diagnosis"][0]["cause"] == "auth-required"
    assert doc["error_text"]["explained_by"]["verdict"] == "confirmed"
    assert "s3cret-token" not in run.stdout


def test_a_pasted_401_names_the_key_the_client_does_not_read(cli: Callable[..., CliRun],
                                                             emulator: Callable[..., Any]
                                                             ) -> None:
    emu = emulator(auth="s3cret-token")
    # told to act as ollama-python, the doctor sends OLLAMA_API_KEY and gets in
    run, doc = check(cli, emu.url, OPENAI_401, "--client", "ollama-python",
                     env={"OLLAMA_API_KEY": "s3cret-token"})
    assert run.code == 1, run.stderr
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["probes"]) == (
        "auth-required", "error", ["error-text"])
    assert "openai-python does not read OLLAMA_API_KEY" in top["explanation"]
    assert doc["error_text"]["explained_by"]["verdict"] == "not-reproduced"
    assert "s3cret-token" not in run.stdout


def test_explain_says_which_live_check_decides(cli: Callable[..., CliRun]) -> None:
    text = ("ConnectionError: Failed to connect to Ollama. Please check that Ollama is "
            "downloaded, running and accessible. https://ollama.com/download")
    data = json.loads(cli("explain", "--json", "--error", text).stdout)
    assert data["confidence"] == "low"
    assert {"reachability", "dns", "proxy"} <= set(data["decided_by"])
    assert data["next_check"] == "ollama-doctor check"  # never --host ollama.com
    plain = cli("explain", "--error", text).stdout
    assert "The text alone cannot tell these apart; a live check decides" in plain


def test_explain_says_when_the_text_shows_no_server(cli: Callable[..., CliRun]) -> None:
    """ollama-js prints the status and the body, never the URL it called: only the user can
    say where the client points."""
    text = ("file:///app/node_modules/ollama/dist/browser.mjs:73\n"
            "ResponseError: <html><head><title>502 Bad Gateway</title></head></html>\n"
            "    at checkOk (file:///app/node_modules/ollama/dist/browser.mjs:73:9) {\n"
            "  status_code: 502\n}")
    data = json.loads(cli("explain", "--json", "--error", text).stdout)
    assert (data["client"], data["target_shown"], data["next_check"]) == (
        "ollama-js", False, "ollama-doctor check")
    plain = cli("explain", "--error", text).stdout
    assert "The error does not show which server the client called: add --host URL" in plain
    shown = ("requests.exceptions.HTTPError: 502 Server Error: Bad Gateway for url: "
             "http://ollama.example.com/api/chat")
    data = json.loads(cli("explain", "--json", "--error", shown).stdout)
    assert (data["target_shown"], data["next_check"]) == (
        True, "ollama-doctor check --host http://ollama.example.com:80")
    assert "does not show which server" not in cli("explain", "--error", shown).stdout
