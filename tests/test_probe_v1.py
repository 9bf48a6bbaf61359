"""The ``v1`` probe (the OpenAI-compatible path): the pure reasoning detector by table, the
probe in-process against the emulator on 127.0.0.1:0, then the real CLI with ``--v1``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ollama_doctor.context import Context, Options
from ollama_doctor.probes import v1
from ollama_doctor.result import Severity, Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun
from tests.support.report import check_of, errors

REASONER = "qwen3:8b;caps=completion,tools,thinking;think=300"


# ---- the pure detector --------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "kwargs", "api"), [
    ({"choices": [{"finish_reason": "length",
                   "message": {"role": "assistant", "content": "", "reasoning": "Hmm"}}]},
     {}, "openai"),
    ({"done_reason": "length", "response": "", "thinking": "Let me"}, {}, "native"),
    ({"done_reason": "length", "message": {"role": "assistant", "content": "",
                                           "thinking": "so"}}, {}, "native"),
    # a streamed native answer: the last object holds neither text; the capability decides
    ({"done_reason": "length", "message": {"role": "assistant", "content": ""}},
     {"capabilities": ["completion", "thinking"]}, "native"),
    ({"done_reason": "length", "response": ""}, {"content": "", "thinking": "well"},
     "native"),
])
def test_thinking_exhausted_detects(answer: dict[str, Any], kwargs: dict[str, Any],
                                    api: str) -> None:
    seen = v1.thinking_exhausted(answer, budget=64, **kwargs)
    assert seen is not None and seen["api"] == api and seen["budget"] == 64


@pytest.mark.parametrize(("answer", "kwargs"), [
    ({"choices": [{"finish_reason": "stop",
                   "message": {"content": "", "reasoning": "Hmm"}}]}, {}),
    ({"choices": [{"finish_reason": "length",
                   "message": {"content": "Hello", "reasoning": "Hmm"}}]}, {}),
    ({"done_reason": "length", "response": ""}, {}),  # not a thinking model: a short budget
    ({"done_reason": "stop", "response": "", "thinking": "x"}, {}),
    ({"done_reason": "length", "response": ""}, {"content": "Hi", "thinking": "x"}),
    (None, {}),
    ({"choices": "nope"}, {}),
])
def test_thinking_exhausted_ignores(answer: Any, kwargs: dict[str, Any]) -> None:
    assert v1.thinking_exhausted(answer, budget=64, **kwargs) is None


def test_thinking_finding_names_the_fixes() -> None:
    seen = v1.thinking_exhausted({"done_reason": "length", "response": "", "thinking": "x"},
                                 budget=128)
    assert seen is not None
    finding = v1.thinking_finding(seen, "qwen3:8b")
    assert finding.cause == v1.THINKING_CAUSE and finding.severity is Severity.WARNING
    text = " ".join(s.text + " ".join(s.commands) for s in finding.fix)
    assert '"think": false' in text and "num_predict" in text
    small = v1.thinking_finding({**seen, "budget": 1}, "qwen3:8b")
    assert small.severity is Severity.INFO  # a one-token call always ends so


@pytest.mark.parametrize(("path", "base_path", "want"), [
    ("", "", False), ("/v1", "", True), ("/proxy/v1/", "", True), ("", "/v1", True),
    ("/api", "", False),
])
def test_implied(path: str, base_path: str, want: bool) -> None:
    assert v1.implied(path, base_path) is want


# ---- the probe in-process ------------------------------------------------------------------------


def _ctx(url: str, **options: Any) -> Context:
    return Context(target=parse_target(url), options=Options(**options), env={})


def test_healthy_path_records_each_request(emulator: Callable[..., Any]) -> None:
    emu = emulator()
    out = v1.run(_ctx(emu.url + "/v1", model="llama3.2"))
    assert out.status is Status.PASS, out
    assert out.facts["requests"] == ["GET /v1/models", "POST /v1/chat/completions",
                                     "POST /v1/chat/completions"]
    assert out.facts["chat_stream"]["done"] is True
    assert out.facts["chat_stream"]["finish_reason"] == "length"
    assert out.facts["api_key"]["required_by_client"] is False


def test_base_url_without_v1_is_wrong_base_path(emulator: Callable[..., Any]) -> None:
    emu = emulator()
    ctx = Context(target=parse_target(emu.url + "/ollama"), env={"OPENAI_API_KEY": "x"},
                  options=Options(model="llama3.2", client="openai-python"))
    out = v1.run(ctx)
    assert out.status is Status.FAIL
    (finding,) = out.findings
    assert finding.cause == "wrong-base-path" and finding.code == 404
    assert finding.evidence["models"]["status"] == 404
    assert out.facts["requests"] == ["GET /ollama/models", "GET /v1/models"]
    assert any(f"{emu.url}/v1" in c for s in finding.fix for c in s.commands)


def test_wrong_model_name_is_model_not_found(emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest", "qwen2.5:7b"])
    out = v1.run(_ctx(emu.url + "/v1", model="llama3.3"))
    assert out.status is Status.FAIL
    (finding,) = out.findings
    assert finding.cause == "model-not-found" and finding.code == 404
    assert finding.evidence["error_type"] == "not_found_error"
    assert "llama3.2:latest" in finding.evidence["suggestions"]
    assert out.facts["requests"] == ["GET /v1/models", "POST /v1/chat/completions"]


def test_tools_on_a_model_without_them(emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["gemma:2b;caps=completion"])
    out = v1.run(_ctx(emu.url + "/v1", model="gemma:2b", needs=("tools",)))
    (finding,) = out.findings
    assert finding.cause == "model-capability" and finding.code == 400
    assert "does not support tools" in finding.message
    assert out.facts["requests"][-1] == "POST /v1/chat/completions"


def test_reasoning_model_runs_out_of_tokens(emulator: Callable[..., Any]) -> None:
    emu = emulator(models=[REASONER], time_scale=0.02)
    out = v1.run(_ctx(emu.url + "/v1", model="qwen3:8b"))
    assert out.status is Status.WARN, out
    (finding,) = out.findings
    assert finding.cause == v1.THINKING_CAUSE and finding.severity is Severity.WARNING
    assert finding.code == 200  # the call "succeeds" with empty content
    assert finding.evidence["finish_reason"] == "length"
    assert finding.evidence["budget"] == v1.BUDGET
    assert finding.evidence["thinking_off_gives_content"] is True
    assert out.facts["reasoning"]["budget_call"]["ran_out"] is True
    assert len(out.facts["requests"]) == 5


def test_reasoning_model_with_room_to_answer(emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["qwen3:8b;think=20"], time_scale=0.02)
    out = v1.run(_ctx(emu.url + "/v1", model="qwen3:8b"))
    assert out.status is Status.PASS, out
    assert out.facts["reasoning"]["budget_call"]["ran_out"] is False


# ---- the command line ----------------------------------------------------------------------------


def test_cli_v1_missing_v1(emulator: Callable[..., Any], cli: Callable[..., CliRun]) -> None:
    """OPENAI_BASE_URL=http://host:port (no /v1): the base the SDK calls under, taken as is."""
    emu = emulator()
    run = cli("probe", "v1", "--client", "openai-python", "--model", "llama3.2", "--json",
              env={"OPENAI_BASE_URL": emu.url, "OPENAI_API_KEY": "ollama"})
    doc = run.json()
    assert run.code == 1, run.stderr
    assert errors(doc) == ["wrong-base-path"]
    assert doc["diagnosis"][0]["code"] == 404
    assert check_of(doc, "v1")["facts"]["requests"] == ["GET /models", "GET /v1/models"]


def test_cli_check_v1_wrong_model(emulator: Callable[..., Any],
                                  cli: Callable[..., CliRun]) -> None:
    emu = emulator()
    run = cli("check", "--v1", "--host", emu.url, "--model", "llama3.3", "--json")
    doc = run.json()
    assert run.code == 1
    v1_check = check_of(doc, "v1")
    assert [f["cause"] for f in v1_check["findings"]] == ["model-not-found"]
    assert "POST /v1/chat/completions" in v1_check["facts"]["requests"]


def test_cli_openai_client_implies_v1(emulator: Callable[..., Any],
                                      cli: Callable[..., CliRun]) -> None:
    emu = emulator(models=[REASONER], time_scale=0.05)  # 300 thinking tokens in 0.15 s
    run = cli("check", "--client", "openai-python", "--host", emu.url, "--model", "qwen3:8b",
              "--json", env={"OPENAI_API_KEY": "sk-test-secret"}, timeout=120)
    doc = run.json()
    v1_check = check_of(doc, "v1")
    assert v1_check["status"] == "warn", v1_check
    assert [f["cause"] for f in v1_check["findings"]] == [v1.THINKING_CAUSE]
    assert v1_check["facts"]["base_url"] == emu.url + "/v1"
    assert "sk-test-secret" not in run.stdout


def test_api_key_note_for_openai_clients(emulator: Callable[..., Any]) -> None:
    emu = emulator()
    ctx = Context(target=parse_target(emu.url + "/v1"), env={},
                  options=Options(model="llama3.2", client="openai-python"))
    out = v1.run(ctx)
    assert out.status is Status.PASS
    assert out.facts["api_key"]["OPENAI_API_KEY_set"] is False
    assert "OPENAI_API_KEY is unset" in out.summary
    ctx = Context(target=parse_target(emu.url + "/v1"), env={"OPENAI_API_KEY": "sk-1"},
                  options=Options(model="llama3.2", client="openai-python"))
    out = v1.run(ctx)
    assert "OPENAI_API_KEY" not in out.summary and out.facts["api_key"]["OPENAI_API_KEY_set"]


def test_auth_proxy_in_front_names_the_api_key(emulator: Callable[..., Any]) -> None:
    emu = emulator(auth="tok")
    ctx = Context(target=parse_target(emu.url + "/v1"), env={"OPENAI_API_KEY": "wrong"},
                  options=Options(model="llama3.2", client="openai-python"))
    out = v1.run(ctx)
    assert out.status is Status.WARN and out.findings == []
    assert "HTTP 401" in out.summary and "api_key" in out.summary
    ctx.env = {"OPENAI_API_KEY": "tok"}
    ctx.memo.clear()
    assert v1.run(ctx).status is Status.PASS


def test_detector_on_the_native_warm_up_call(emulator: Callable[..., Any]) -> None:
    """What warm-up sends (streamed /api/generate, num_predict 1): the last NDJSON object holds
    no text, so the capability from /api/show decides (the lines warm-up would call)."""
    import json

    import httpx

    emu = emulator(models=[REASONER, "llama3.2:latest"], time_scale=0.02)
    with httpx.Client(trust_env=False, timeout=10) as client:
        for model, want in (("qwen3:8b", True), ("llama3.2", False)):
            caps = client.post(emu.url + "/api/show", json={"model": model}).json()[
                "capabilities"]
            reply = client.post(emu.url + "/api/generate", json={
                "model": model, "prompt": "Hi", "stream": True,
                "options": {"num_predict": 1}})
            final = json.loads(reply.text.splitlines()[-1])
            seen = v1.thinking_exhausted(final, budget=1, capabilities=caps)
            assert (seen is not None) is want, (model, final)
            if seen is not None:
                assert v1.thinking_finding(seen, model).severity is Severity.INFO


@pytest.mark.parametrize(("faults", "cause"), [
    ({"runner_crash": "new"}, "runner-crashed"),
    ({"oom": "new"}, "out-of-memory"),
])
def test_a_5xx_is_read_through_ollamas_own_words(emulator: Callable[..., Any],
                                                 faults: dict[str, str], cause: str) -> None:
    """A 500 on /v1 carries Ollama's message: read by the one table (ollama_messages), not
    left as a bare server-error."""
    emu = emulator(**faults)
    out = v1.run(_ctx(emu.url + "/v1", model="llama3.2"))
    assert out.status is Status.FAIL
    assert {f.cause for f in out.findings} == {cause}
    assert all(f.code == 500 for f in out.findings)
