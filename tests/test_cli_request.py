"""``check --request`` / ``explain --request`` and ``check --python/--project`` from the real
command line, against the emulator on 127.0.0.1:0 (``--send`` replays the body to it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import CliRun
from tests.support.report import check_of

BAD_STREAM = {"model": "llama3.2", "prompt": "hi", "stream": "false"}
STREAM_ERROR = ("json: cannot unmarshal string into Go struct field GenerateRequest.stream of "
                "type bool")


def _body(tmp_path: Path, body: Any, name: str = "body.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


def test_explain_request_rejected_offline(tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    run = cli("explain", "--request", _body(tmp_path, BAD_STREAM), "--json")
    assert run.code == 1, run.stderr
    doc = run.json()
    assert doc["endpoint"] == "/api/generate" and doc["endpoint_guessed"] is True
    assert doc["prediction"] == {"status": 400, "body": {"error": STREAM_ERROR},
                                 "stage": "decode"}
    assert [f["evidence"]["rule"] for f in doc["findings"]] == ["wrong-type"]


def test_explain_request_accepted_from_stdin(cli: Callable[..., CliRun]) -> None:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    run = cli("explain", "--request", "-", "--endpoint", "/api/chat", stdin=json.dumps(body))
    assert run.code == 0, run.stderr
    assert "Ollama accepts this body." in run.stdout


def test_explain_request_silent_problem_text(tmp_path: Path,
                                             cli: Callable[..., CliRun]) -> None:
    body = {"model": "llama3.2", "prompt": "hi", "max_tokens": 5}
    run = cli("explain", "--request", _body(tmp_path, body), "--endpoint", "/api/generate")
    assert run.code == 0
    assert "max_tokens" in run.stdout and "Ollama accepts this body." in run.stdout


def test_request_usage_errors(tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    missing = cli("explain", "--request", str(tmp_path / "nope.json"))
    assert missing.code == 2 and missing.stderr.count("\n") == 1
    assert "nope.json" in missing.stderr
    endpoint = cli("explain", "--request", _body(tmp_path, BAD_STREAM), "--endpoint", "/api/x")
    assert endpoint.code == 2 and "unknown endpoint" in endpoint.stderr
    lonely = cli("check", "--send", "--host", "http://127.0.0.1:9")
    assert lonely.code == 2 and "--request" in lonely.stderr
    assert "Traceback" not in missing.stderr + endpoint.stderr + lonely.stderr


def test_check_request_send_matches_the_emulator(tmp_path: Path,
                                                 emulator: Callable[..., Any],
                                                 cli: Callable[..., CliRun]) -> None:
    emu = emulator()
    run = cli("check", "--host", emu.url, "--request", _body(tmp_path, BAD_STREAM), "--send",
              "--json")
    assert run.code == 1, run.stderr
    doc = run.json()
    request = check_of(doc, "request")
    assert request["status"] == "fail"
    assert [f["cause"] for f in request["findings"]] == ["bad-request"]
    top = doc["diagnosis"][0]
    assert (top["cause"], top["code"], top["probes"]) == ("bad-request", 400, ["request"])
    replay = doc["request"]["replay"]
    assert replay == {"status": 400, "body": {"error": STREAM_ERROR}, "error": None,
                      "matches": True, "differences": []}
    # the body's model was taken as --model: the models probe looked at it
    assert doc["target"]["model"] == "llama3.2"


def test_check_request_capability_from_the_server(tmp_path: Path,
                                                  emulator: Callable[..., Any],
                                                  cli: Callable[..., CliRun]) -> None:
    emu = emulator(models=["gemma:2b;caps=completion"])
    body = {"model": "gemma:2b", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "stream": False}
    run = cli("check", "--host", emu.url, "--request", _body(tmp_path, body), "--send",
              "--json")
    doc = run.json()
    assert run.code == 1
    causes = [f["cause"] for f in check_of(doc, "request")["findings"]]
    assert "model-capability" in causes
    replay = doc["request"]["replay"]
    assert replay["status"] == 400 and replay["matches"] is True, replay


def test_check_request_text_output(tmp_path: Path, emulator: Callable[..., Any],
                                   cli: Callable[..., CliRun]) -> None:
    emu = emulator()
    run = cli("check", "--host", emu.url, "--request", _body(tmp_path, BAD_STREAM), "--send")
    assert run.code == 1
    assert "Replayed: the server answered 400, as predicted." in run.stdout


def test_check_project_pitfalls(tmp_path: Path, emulator: Callable[..., Any],
                                cli: Callable[..., CliRun]) -> None:
    emu = emulator()
    (tmp_path / "requirements.txt").write_text("ollama==0.1.6\nopenai>=1.0\n")
    run = cli("check", "--host", emu.url, "--project", str(tmp_path), "--json")
    doc = run.json()
    libs = check_of(doc, "clientlibs")
    names = [lib["name"] for lib in libs["facts"]["libraries"]]
    assert names == ["ollama", "openai"]
    assert libs["findings"], libs
    assert all(f["evidence"]["library"]["name"] in names for f in libs["findings"])


def test_check_python_interpreter(emulator: Callable[..., Any],
                                  cli: Callable[..., CliRun]) -> None:
    emu = emulator()
    run = cli("check", "--host", emu.url, "--python", sys.executable, "--json")
    doc = run.json()
    libs = check_of(doc, "clientlibs")
    assert libs["status"] in ("pass", "warn", "fail")
    assert isinstance(libs["facts"]["libraries"], list)


def test_clientlib_usage_errors(tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    run = cli("check", "--project", str(tmp_path / "none"), "--host", "http://127.0.0.1:9")
    assert run.code == 2 and "no such directory" in run.stderr
    run = cli("check", "--python", str(tmp_path), "--host", "http://127.0.0.1:9")
    assert run.code == 2 and "Traceback" not in run.stderr


def test_request_with_targets_is_a_usage_error(tmp_path: Path,
                                               cli: Callable[..., CliRun]) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("http://127.0.0.1:9\n")
    run = cli("check", "--targets", str(targets), "--request", _body(tmp_path, BAD_STREAM))
    assert run.code == 2 and "not with --targets" in run.stderr
