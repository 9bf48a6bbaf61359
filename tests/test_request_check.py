"""Tests for ``request_check``: every rule, and every rejection replayed against the emulator.

The Go strings in ``GO_DECODE`` were recorded by running Go's own ``encoding/json``,
``encoding/base64`` and ``time.ParseDuration`` on the bodies (copies of the request structs of
``api/types.go`` v0.33). Each rejected case is sent to the emulator, which must answer with
exactly the status and body the table predicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor.causes import CAUSES
from ollama_doctor.emulator import Emulator, EmulatorConfig, ModelSpec
from ollama_doctor.request_check import (
    ENDPOINTS,
    MAX_BODY_BYTES,
    RULES,
    RequestCheckError,
    as_text,
    check_request,
    go_base64_error,
    go_duration_error,
    guess_endpoint,
    load_body,
    rules_markdown,
    send,
    table,
)

MODELS = [
    "llama3.2:latest",
    "tiny:1b;caps=completion",
    "nomic-embed-text",
    "qwen3:latest;caps=completion,tools,thinking",
]
CAPS = {ModelSpec.parse(m).name.split(":")[0]: ModelSpec.parse(m).capabilities for m in MODELS}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    config = EmulatorConfig(models=[ModelSpec.parse(m) for m in MODELS], time_scale=0.01)
    with Emulator(config) as emulator:
        yield emulator


def err(message: str) -> dict[str, Any]:
    return {"error": message}


def oai(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# (id, endpoint, body, capabilities model or None, expected rules, expected (status, body))
REJECTED: list[tuple[str, str, Any, str | None, list[str], tuple[int, Any]]] = [
    ("stream-string", "/api/generate", {"model": "llama3.2", "prompt": "hi", "stream": "false"},
     None, ["wrong-type"],
     (400, err("json: cannot unmarshal string into Go struct field GenerateRequest.stream of "
               "type bool"))),
    ("keep-alive-no-unit", "/api/generate",
     {"model": "llama3.2", "prompt": "hi", "keep_alive": "300"}, None, ["keep-alive"],
     (400, err('time: missing unit in duration "300"'))),
    ("keep-alive-bool", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "keep_alive": True},
     None, ["keep-alive"], (400, err("Unsupported type: 'bool'"))),
    ("keep-alive-unit", "/api/embed", {"model": "nomic-embed-text", "input": "x",
                                        "keep_alive": "10min"}, None, ["keep-alive"],
     (400, err('time: unknown unit "min" in duration "10min"'))),
    ("think-bad", "/api/chat", {"model": "qwen3", "messages": [{"role": "user", "content": "x"}],
                                "think": "yes"}, None, ["think-value"],
     (400, err('invalid think value: "yes" (must be "high", "medium", "low", "max", true, or '
               "false)"))),
    ("image-data-url", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "images": ["data:image/png;base64,AAAA"]}, None,
     ["image-not-base64"], (400, err("illegal base64 data at input byte 4"))),
    ("chat-image", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x", "images": ["%%%"]}]},
     None, ["image-not-base64"], (400, err("illegal base64 data at input byte 0"))),
    ("message-content-number", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": 5}]}, None, ["wrong-type"],
     (400, err("json: cannot unmarshal number into Go struct field ChatRequest.messages.content "
               "of type string"))),
    ("messages-number", "/api/chat", {"model": "llama3.2", "messages": 1.5}, None,
     ["wrong-type"],
     (400, err("json: cannot unmarshal number into Go struct field ChatRequest.messages of "
               "type []api.Message"))),
    ("top-logprobs-float", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "top_logprobs": 1.5}, None, ["wrong-type"],
     (400, err("json: cannot unmarshal number 1.5 into Go struct field "
               "GenerateRequest.top_logprobs of type int"))),
    ("top-logprobs-range", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 21},
     None, ["top-logprobs"], (400, err("top_logprobs must be between 0 and 20"))),
    ("options-array", "/api/generate", {"model": "llama3.2", "prompt": "x", "options": []},
     None, ["wrong-type"],
     (400, err("json: cannot unmarshal array into Go struct field GenerateRequest.options of "
               "type map[string]interface {}"))),
    ("not-object", "/api/generate", [{"model": "llama3.2"}], None, ["not-object"],
     (400, err("json: cannot unmarshal array into Go value of type api.GenerateRequest"))),
    ("generate-no-model", "/api/generate", {"prompt": "x"}, None, ["model-missing"],
     (404, err("model '' not found"))),
    ("chat-no-model", "/api/chat", {"messages": [{"role": "user", "content": "x"}]}, None,
     ["model-missing"], (400, err("model is required"))),
    ("show-no-model", "/api/show", {"verbose": True}, None, ["model-missing"],
     (400, err("model is required"))),
    ("embeddings-no-model", "/api/embeddings", {"prompt": "x"}, None, ["model-missing"],
     (400, err("model is required"))),
    ("embed-input-type", "/api/embed", {"model": "nomic-embed-text", "input": [1]}, None,
     ["embed-input"], (400, err("invalid input type"))),
    ("raw-conflict", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "raw": True, "system": "be brief"}, None,
     ["raw-conflict"], (400, err("raw mode does not support template, system, or context"))),
    ("think-capability", "/api/generate", {"model": "llama3.2", "prompt": "x", "think": True},
     "llama3.2", ["think-capability"], (400, err('"llama3.2" does not support thinking'))),
    ("tools-capability", "/api/chat",
     {"model": "tiny:1b", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f"}}]}, "tiny",
     ["tools-capability"],
     (400, err("registry.ollama.ai/library/tiny:1b does not support tools"))),
    ("insert-capability", "/api/generate", {"model": "tiny:1b", "prompt": "x", "suffix": "y"},
     "tiny", ["insert-capability"],
     (400, err("registry.ollama.ai/library/tiny:1b does not support insert"))),
    ("generate-on-embedding", "/api/generate", {"model": "nomic-embed-text", "prompt": "x"},
     "nomic-embed-text", ["completion-capability"],
     (400, err('"nomic-embed-text" does not support generate'))),
    ("option-type", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "options": {"temperature": "0.7"}}, None,
     ["option-type"], (500, err('option "temperature" must be of type float32'))),
    ("option-int", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
      "options": {"num_ctx": "8192"}}, None,
     ["option-type"], (500, err('option "num_ctx" must be of type integer'))),
    ("option-stop", "/api/embed",
     {"model": "nomic-embed-text", "input": "x", "options": {"stop": "\n"}}, None,
     ["option-type"], (500, err('option "stop" must be of type array'))),
    ("format-yaml", "/api/generate", {"model": "llama3.2", "prompt": "x", "format": "yaml"},
     None, ["format-invalid"],
     (500, err('invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema '
               "object"))),
    ("format-array", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "format": ["json"]},
     None, ["format-invalid"],
     (500, err('invalid format: "[\\"json\\"]"; expected "json" or a valid JSON Schema '
               "object"))),
    ("embed-too-long", "/api/embed",
     {"model": "nomic-embed-text", "input": ["short", "x" * 40000], "truncate": False}, None,
     ["embed-too-long"], (400, err("the input length exceeds the context length"))),
    ("embeddings-option-type", "/api/embeddings",
     {"model": "nomic-embed-text", "prompt": "x", "options": {"use_mmap": "yes"}}, None,
     ["option-type"], (500, err('option "use_mmap" must be of type boolean'))),
    ("v1-temperature-string", "/v1/chat/completions",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
      "temperature": "0.7"}, None, ["wrong-type"],
     (400, oai(400, "json: cannot unmarshal string into Go struct field "
                    "ChatCompletionRequest.temperature of type float64"))),
    ("v1-role-number", "/v1/chat/completions",
     {"model": "llama3.2", "messages": [{"role": 5, "content": "x"}]}, None, ["wrong-type"],
     (400, oai(400, "json: cannot unmarshal number into Go struct field Message.messages.role "
                    "of type string"))),
    ("tools-object", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
      "tools": {"type": "function"}}, None, ["wrong-type"],
     (400, err("json: cannot unmarshal object into Go struct field ChatRequest.tools of type "
               "api.Tools"))),
    ("context-float", "/api/generate", {"model": "llama3.2", "prompt": "x", "context": [1.5]},
     None, ["wrong-type"],
     (400, err("json: cannot unmarshal number 1.5 into Go struct field GenerateRequest.context "
               "of type int"))),
    ("v1-messages-empty", "/v1/chat/completions", {"model": "llama3.2", "messages": []}, None,
     ["messages-empty"], (400, oai(400, "[] is too short - 'messages'"))),
    ("v1-image-url", "/v1/chat/completions",
     {"model": "llama3.2", "messages": [{"role": "user", "content": [
         {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}]}]},
     None, ["image-url"],
     (400, oai(400, "image URLs are not currently supported, please use base64 encoded data "
                    "instead"))),
    ("v1-content-number", "/v1/chat/completions",
     {"model": "llama3.2", "messages": [{"role": "user", "content": 5}]}, None,
     ["message-content"], (400, oai(400, "invalid message content type: float64"))),
    ("v1-reasoning", "/v1/chat/completions",
     {"model": "qwen3", "messages": [{"role": "user", "content": "x"}],
      "reasoning_effort": "extreme"}, None, ["reasoning-effort"],
     (400, oai(400, 'invalid reasoning value: "extreme" (must be "minimal", "low", "medium", '
                    '"high", "xhigh", "ultra", "max", or "none")'))),
    ("v1-tools-capability", "/v1/chat/completions",
     {"model": "tiny:1b", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f"}}]}, "tiny",
     ["tools-capability"],
     (400, oai(400, "registry.ollama.ai/library/tiny:1b does not support tools"))),
    ("v1-completions-stop", "/v1/completions",
     {"model": "llama3.2", "prompt": "x", "stop": ["a", 1]}, None, ["stop-type"],
     (400, oai(400, "invalid type for 'stop' field: float64"))),
    ("v1-completions-no-model", "/v1/completions", {"prompt": "x"}, None, ["model-missing"],
     (404, oai(404, "model '' not found"))),
    ("v1-embeddings-format", "/v1/embeddings",
     {"model": "nomic-embed-text", "input": "x", "encoding_format": "int8"}, None,
     ["encoding-format"],
     (400, oai(400, "Invalid value for 'encoding_format' = int8. Supported values: ['float', "
                    "'base64']."))),
    ("v1-embeddings-no-input", "/v1/embeddings", {"model": "nomic-embed-text"}, None,
     ["embed-input"], (400, oai(400, "invalid input"))),
]


@pytest.mark.parametrize(("ep", "body", "model", "rules", "answer"),
                         [pytest.param(*case[1:], id=case[0]) for case in REJECTED])
def test_rejected_prediction_and_emulator(emu: Emulator, ep: str, body: Any, model: str | None,
                                          rules: list[str], answer: tuple[int, Any]) -> None:
    caps = CAPS[model] if model else None
    report = check_request(body, ep, capabilities=caps)
    assert report.rules() == rules
    assert report.prediction is not None
    assert (report.prediction.status, report.prediction.body) == answer
    finding = report.findings[0]
    assert finding.cause in CAUSES
    assert finding.evidence["ollama"]["status"] == answer[0]
    assert finding.evidence["ollama"]["body"] == answer[1]
    assert finding.code == answer[0]
    replay = send(body, ep, emu.url, timeout=30, report=report)
    assert replay.differences == []
    assert (replay.status, replay.body) == answer


TEXT_BODIES: list[tuple[str, str, str, tuple[int, Any]]] = [
    ("empty", "/api/generate", "  ", (400, err("missing request body"))),
    ("syntax", "/api/chat", '{"model": "llama3.2",}',
     (400, err("invalid character '}' looking for beginning of object key string"))),
    ("truncated", "/api/generate", '{"model": "llama3.2"',
     (400, err("unexpected EOF"))),
    ("literal-kept", "/api/generate", '{"model":"llama3.2","prompt":"x","top_logprobs":1e1}',
     (400, err("json: cannot unmarshal number 1e1 into Go struct field "
               "GenerateRequest.top_logprobs of type int"))),
    # NaN is Python's, not JSON's: Go's scanner stops at the N
    ("nan", "/api/generate", '{"model":"llama3.2","prompt":"x","options":{"seed":NaN}}',
     (400, err("invalid character 'N' looking for beginning of value"))),
]


@pytest.mark.parametrize(("ep", "text", "answer"),
                         [pytest.param(*case[1:], id=case[0]) for case in TEXT_BODIES])
def test_text_bodies_against_emulator(emu: Emulator, ep: str, text: str,
                                      answer: tuple[int, Any]) -> None:
    report = check_request(text, ep)
    assert report.prediction is not None
    assert (report.prediction.status, report.prediction.body) == answer
    replay = send(text, ep, emu.url, report=report)
    assert replay.differences == []


def test_number_literal_is_kept_as_go_quotes_it() -> None:
    _, ep, text, answer = TEXT_BODIES[3]
    report = check_request(text, ep)
    assert report.prediction is not None
    assert (report.prediction.status, report.prediction.body) == answer


# Silent rules: Ollama accepts the body; the finding says what it does instead.
SILENT: list[tuple[str, str, Any, dict[str, Any], list[str], str]] = [
    ("max-tokens-on-generate", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "max_tokens": 5}, {}, ["unknown-field"],
     "options.num_predict"),
    ("option-misspelt", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
      "option": {"temperature": 0}}, {}, ["unknown-field"], "options"),
    ("typo-close-match", "/api/generate", {"model": "llama3.2", "prompt": "x", "steam": False},
     {}, ["unknown-field"], "stream"),
    ("unknown-option", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "options": {"temprature": 0.2}}, {},
     ["unknown-option"], "options.temperature"),
    ("server-setting", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "options": {"num_parallel": 4}}, {},
     ["server-setting"], ""),
    ("runner-option", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "options": {"num_gpu": 0}}, {}, ["runner-option"], ""),
    ("role", "/api/chat", {"model": "llama3.2", "messages": [{"role": "bot", "content": "x"}]},
     {}, ["message-role"], "tool"),
    ("vision", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]},
     {"capabilities": ("completion", "tools")}, ["vision-capability"], ""),
    ("num-ctx-capped", "/api/generate",
     {"model": "llama3.2", "prompt": "x", "options": {"num_ctx": 200000}},
     {"context_length": 131072}, ["num-ctx-too-large"], ""),
    ("prompt-too-long", "/api/generate", {"model": "llama3.2", "prompt": "word " * 4000},
     {"default_num_ctx": 4096}, ["prompt-too-long"], ""),
    ("chat-too-long", "/api/chat",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x" * 20000}],
      "options": {"num_ctx": 2048}}, {}, ["prompt-too-long"], ""),
    ("embed-truncated", "/api/embed", {"model": "nomic-embed-text", "input": "x" * 9000},
     {"context_length": 2048}, ["embed-truncated"], ""),
    ("embed-not-embedding", "/api/embed", {"model": "llama3.2", "input": "x"},
     {"capabilities": ("completion",)}, ["not-embedding-model"], ""),
    ("unload", "/api/generate", {"model": "llama3.2", "keep_alive": 0}, {}, ["unload"], ""),
    ("v1-options", "/v1/chat/completions",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
      "options": {"num_ctx": 8192}}, {}, ["unknown-field"], ""),
    ("v1-max-completion-tokens", "/v1/chat/completions",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
      "max_completion_tokens": 5}, {}, ["unknown-field"], "max_tokens"),
    ("v1-response-format", "/v1/chat/completions",
     {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "yaml"}}, {}, ["response-format"], ""),
    ("embed-prompt", "/api/embed", {"model": "nomic-embed-text", "prompt": "x"}, {},
     ["unknown-field"], "input"),
]


@pytest.mark.parametrize(("ep", "body", "facts", "rules", "hint"),
                         [pytest.param(*case[1:], id=case[0]) for case in SILENT])
def test_silent_rules(ep: str, body: Any, facts: dict[str, Any], rules: list[str],
                      hint: str) -> None:
    report = check_request(body, ep, **facts)
    assert report.rules() == rules
    assert report.prediction is None
    for finding in report.findings:
        assert finding.cause in CAUSES
        assert finding.evidence["ollama"] is None
        assert finding.evidence["silent"]
        assert finding.fix
    if hint:
        assert hint in (report.findings[0].evidence.get("suggestion") or "") + \
            report.findings[0].fix[0].text


def test_truncation_is_labelled_an_estimate() -> None:
    report = check_request({"model": "m", "prompt": "x" * 40000}, "/api/generate",
                           default_num_ctx=4096)
    (finding,) = report.findings
    assert finding.cause == "prompt-truncated"
    assert finding.evidence["estimate"] is True
    assert finding.evidence["tokens_estimate"] == 10000
    assert "estimate" in finding.message
    assert finding.fix[0].commands == ("OLLAMA_CONTEXT_LENGTH=16384",)


def test_accepted_bodies_are_accepted_by_the_emulator(emu: Emulator) -> None:
    bodies = [
        ("/api/generate", {"model": "llama3.2", "prompt": "hi", "keep_alive": "10m",
                           "options": {"temperature": 0.2, "num_predict": 3},
                           "format": {"type": "object"}}),
        ("/api/chat", {"Model": "llama3.2", "Messages": [{"role": "User", "content": "hi"}],
                       "think": False, "keep_alive": -1, "format": "json"}),
        ("/api/embed", {"model": "nomic-embed-text", "input": ["a", "b"], "truncate": True}),
        ("/api/embeddings", {"model": "nomic-embed-text", "prompt": "a"}),
        ("/api/show", {"model": "llama3.2"}),
        ("/v1/chat/completions", {"model": "llama3.2", "max_tokens": 3, "temperature": 0,
                                  "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"model": "llama3.2", "prompt": "hi", "max_tokens": 3}),
        ("/v1/embeddings", {"model": "nomic-embed-text", "input": "hi"}),
    ]
    for ep, body in bodies:
        report = check_request(body, ep)
        assert report.prediction is None, (ep, report.to_dict())
        assert report.findings == [], (ep, report.rules())
        replay = send(body, ep, emu.url)
        assert replay.matches, (ep, replay.differences)


def test_send_reports_a_difference(emu: Emulator) -> None:
    # Predicted acceptance, but the model is not installed: the replay says so.
    replay = send({"model": "absent", "prompt": "x"}, "/api/generate", emu.url)
    assert not replay.matches
    assert replay.status == 404
    assert replay.differences == ["predicted acceptance (200), got 404"]


def test_send_to_nothing_is_a_clear_failure() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    replay = send({"model": "m", "prompt": "x"}, "/api/generate", f"http://127.0.0.1:{port}",
                  timeout=5)
    assert replay.status is None
    assert replay.error is not None and replay.error.startswith("ConnectError")
    assert not replay.matches


@pytest.mark.parametrize(("body", "endpoint"), [
    ({"model": "m", "prompt": "x"}, "/api/generate"),
    ({"model": "m", "messages": []}, "/api/chat"),
    ({"model": "m", "input": "x"}, "/api/embed"),
    ({"model": "m", "input": "x", "encoding_format": "float"}, "/v1/embeddings"),
    ({"model": "m", "messages": [], "max_tokens": 4}, "/v1/chat/completions"),
    ({"model": "m", "prompt": "x", "max_tokens": 4}, "/v1/completions"),
    ({"model": "m", "verbose": True}, "/api/show"),
    ({"model": "m", "prompt": "x", "options": {"num_predict": 4}}, "/api/generate"),
])
def test_endpoint_guess(body: dict[str, Any], endpoint: str) -> None:
    assert guess_endpoint(body) == endpoint
    report = check_request(body)
    assert report.endpoint == endpoint and report.endpoint_guessed


def test_endpoint_forms_and_bad_endpoint() -> None:
    assert check_request({}, "http://127.0.0.1:11434/api/chat/").endpoint == "/api/chat"
    assert check_request({}, "api/embed").endpoint == "/api/embed"
    with pytest.raises(RequestCheckError, match="unknown endpoint '/api/tags'"):
        check_request({}, "/api/tags")


# Recorded with Go's encoding/base64 (StdEncoding) and time.ParseDuration.
GO_BASE64 = [("YQ==", None), ("YQ=", 3), ("YQ==YQ==", 4), ("YWJj\nZGVm", None), ("=abc", 0),
             ("YWJjZA=\n=", None), ("", None), ("abc", 0), ("abcde", 4), ("ab=c", 2),
             ("YWJj!", 4), ("data:image/png;base64,AAAA", 4)]
GO_DURATION = [("1.5h", None), (".s", 'time: invalid duration ".s"'),
               ("", 'time: invalid duration ""'), ("-", 'time: invalid duration "-"'),
               ("10m30s", None), ("5 minutes", 'time: unknown unit " minutes" in duration '
                                               '"5 minutes"'),
               ("300", 'time: missing unit in duration "300"'), ("0", None), ("-1", None)]


@pytest.mark.parametrize(("text", "offset"), GO_BASE64)
def test_base64_offsets_match_go(text: str, offset: int | None) -> None:
    from ollama_doctor.emulator.decode import base64_error

    want = None if offset is None else f"illegal base64 data at input byte {offset}"
    assert go_base64_error(text) == want
    assert base64_error(text) == want  # the emulator's own copy agrees


@pytest.mark.parametrize(("text", "error"), GO_DURATION)
def test_durations_match_go(text: str, error: str | None) -> None:
    if text == "-1":
        error = 'time: missing unit in duration "-1"'
    assert go_duration_error(text) == error


def test_table_names_its_version_and_covers_every_endpoint() -> None:
    data = table()
    assert data["ollama_version"] == "0.33.0"
    assert set(data["endpoints"]) == set(ENDPOINTS)
    assert set(data["foreign_fields"]) == set(ENDPOINTS)
    for spec in data["endpoints"].values():
        assert "model" in spec["fields"]


def test_report_json_shape() -> None:
    report = check_request({"model": "m", "prompt": "x", "stream": "no"}, "/api/generate")
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc == {
        "endpoint": "/api/generate",
        "endpoint_guessed": False,
        "ollama_version": "0.33.0",
        "prediction": {"status": 400, "stage": "decode", "body": {
            "error": "json: cannot unmarshal string into Go struct field GenerateRequest.stream "
                     "of type bool"}},
        "findings": [{
            "cause": "bad-request", "severity": "error", "confidence": "high",
            "message": "`stream` has the wrong JSON type: Ollama expects true or false.",
            "code": 400,
            "evidence": {"rule": "wrong-type", "field": "stream", "endpoint": "/api/generate",
                         "ollama": {"status": 400, "stage": "decode", "body": {
                             "error": "json: cannot unmarshal string into Go struct field "
                                      "GenerateRequest.stream of type bool"}},
                         "silent": None},
            "fix": [{"text": 'Send `stream` as true or false (JSON true), not string.',
                     "kind": "text", "commands": []}],
        }],
    }


def test_every_rule_is_tested_and_listed() -> None:
    tested = {rule for case in REJECTED for rule in case[4]}
    tested |= {rule for case in SILENT for rule in case[4]}
    tested |= {"empty-body", "not-json"}  # TEXT_BODIES
    listed = {rule for rule, _answer, _what in RULES}
    assert tested == listed
    table_text = rules_markdown()
    assert table_text.startswith("Request rules (Ollama v0.33.0):")
    assert table_text.count("\n| `") == len(RULES)
    for rule, answer, _what in RULES:
        if answer == "silent":
            assert any(rule in case[4] for case in SILENT), rule
        else:
            assert any(rule in case[4] for case in REJECTED) or rule in ("empty-body",
                                                                            "not-json"), rule


@pytest.mark.parametrize(("stream", "content_type"), [
    (None, "application/json"), (False, "application/json; charset=utf-8")])
def test_format_error_content_type(emu: Emulator, stream: bool | None,
                                   content_type: str) -> None:
    import httpx

    body: dict[str, Any] = {"model": "llama3.2", "prompt": "x", "format": "yaml"}
    if stream is not None:
        body["stream"] = stream
    r = httpx.post(f"{emu.url}/api/generate", json=body, timeout=30, trust_env=False)
    assert (r.status_code, r.headers["content-type"]) == (500, content_type)
    report = check_request(body, "/api/generate")
    assert report.prediction is not None and r.json() == report.prediction.body


def test_as_text_whole_output(emu: Emulator) -> None:
    body = {"model": "llama3.2", "prompt": "hi", "keep_alive": "300", "max_tokens": 5}
    report = check_request(body, "/api/generate")
    replay = send(body, "/api/generate", emu.url, report=report)
    assert as_text(report, replay) == "\n".join([
        "POST /api/generate, checked against Ollama v0.33.0",
        'Ollama answers 400 {"error": "time: missing unit in duration \\"300\\""}',
        "  ✗ [keep-alive] `keep_alive` \"300\" is not a duration Ollama reads.",
        '      Ollama: 400 {"error": "time: missing unit in duration \\"300\\""}',
        '      Fix: Give a unit ("300s", "10m", "24h"), a number of seconds (300), 0 to unload '
        "at once, or -1 to keep the model loaded.",
        "  ! [unknown-field] `max_tokens` is not a field of /api/generate: Ollama ignores it "
        "without a word.",
        "      Ollama: ignored: `max_tokens` has no effect",
        "      Fix: Use options.num_predict.",
        "Replayed: the server answered 400, as predicted.",
    ])


def test_load_body(tmp_path: Path) -> None:
    import io

    path = tmp_path / "body.json"
    path.write_text('{"model": "m"}')
    assert load_body(str(path)) == '{"model": "m"}'
    assert load_body("-", io.StringIO("{}")) == "{}"
    with pytest.raises(RequestCheckError, match="No such file or directory"):
        load_body(str(tmp_path / "absent.json"))
    with pytest.raises(RequestCheckError, match="larger than"):
        load_body("-", io.StringIO(" " * (MAX_BODY_BYTES + 1)))


def _value_strategy() -> Any:
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 30),
                        st.sampled_from([1.5, 0.7, -1.0]),
                        st.sampled_from(["", "json", "300", "5m", "high", "yes", "aGk=", "%%",
                                         "user", "bot"]))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["role", "content", "images", "type", "num_ctx",
                                         "temperature"]), inner, max_size=3)), max_leaves=6)


def test_checker_and_emulator_agree_on_random_bodies(emu: Emulator) -> None:
    """Two independent readings of the same Go structs: every decode-stage prediction must be
    what the emulator answers."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    endpoints = ["/api/generate", "/api/chat", "/api/embed", "/v1/chat/completions"]
    fields = st.sampled_from(["stream", "keep_alive", "think", "images", "messages", "options",
                              "format", "context", "top_logprobs", "raw", "truncate", "input",
                              "temperature", "max_tokens", "tools", "Stream", "prompt"])

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(endpoints), st.dictionaries(fields, _value_strategy(), max_size=3))
    def run(ep: str, extra: dict[str, Any]) -> None:
        model = "nomic-embed-text" if ep == "/api/embed" else "llama3.2"
        body = {"model": model, **extra}
        report = check_request(body, ep)
        if report.prediction is None or report.prediction.stage != "decode":
            return
        replay = send(body, ep, emu.url, report=report, timeout=30)
        assert replay.differences == [], (ep, body)

    run()
