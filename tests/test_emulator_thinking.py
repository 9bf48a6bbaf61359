"""The emulator's reasoning models (``think=N`` in a model spec): the thinking comes first and
counts against ``num_predict``/``max_tokens``, as in Ollama (one budget for every token the
runner predicts); a budget no larger than the thinking ends with empty content and
``done_reason``/``finish_reason`` ``"length"``. Over real sockets on 127.0.0.1:0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ollama_doctor.emulator import Emulator, EmulatorConfig, ModelSpec
from ollama_doctor.emulator.generation import ANSWER, THOUGHT

MODELS = ("qwen3:8b;think=12", "llama3.2:latest", "plain:1b;caps=completion")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = Emulator(EmulatorConfig(time_scale=0.01,
                                       models=[ModelSpec.parse(m) for m in MODELS]))
    emulator.start()
    yield emulator
    emulator.stop()


def post(emu: Emulator, path: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.post(emu.url + path, json=body)


def test_spec_think_adds_the_capability() -> None:
    spec = ModelSpec.parse("qwen3:8b;caps=completion,tools;think=40")
    assert spec.think_tokens == 40 and spec.capabilities == ("completion", "tools", "thinking")
    assert ModelSpec.parse("m").think_tokens == 0
    with pytest.raises(ValueError, match="bad think"):
        ModelSpec.parse("m;think=lots")


def test_native_chat_thinks_then_answers(emu: Emulator) -> None:
    r = post(emu, "/api/chat", {"model": "qwen3:8b", "stream": False,
                                "messages": [{"role": "user", "content": "hi"}]})
    data = r.json()
    assert data["message"]["content"] == "".join(ANSWER)
    assert data["message"]["thinking"] == "".join((THOUGHT * 2)[:12])
    assert data["done_reason"] == "stop" and data["eval_count"] == 12 + len(ANSWER)


def test_native_budget_spent_thinking(emu: Emulator) -> None:
    r = post(emu, "/api/generate", {"model": "qwen3:8b", "prompt": "hi", "stream": False,
                                    "options": {"num_predict": 8}})
    data = r.json()
    assert (data["response"], data["done_reason"], data["eval_count"]) == ("", "length", 8)
    assert data["thinking"]


def test_native_think_false_answers(emu: Emulator) -> None:
    r = post(emu, "/api/generate", {"model": "qwen3:8b", "prompt": "hi", "stream": False,
                                    "think": False, "options": {"num_predict": 8}})
    data = r.json()
    assert data["response"] == "".join(ANSWER[:8]) and "thinking" not in data


def test_native_stream_carries_thinking_chunks(emu: Emulator) -> None:
    r = post(emu, "/api/chat", {"model": "qwen3:8b", "options": {"num_predict": 5},
                                "messages": [{"role": "user", "content": "hi"}]})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [line["message"].get("thinking") for line in lines[:-1]] == list(THOUGHT[:5])
    assert all(line["message"]["content"] == "" for line in lines)
    assert lines[-1]["done_reason"] == "length"


def test_v1_reasoning_and_length(emu: Emulator) -> None:
    body = {"model": "qwen3:8b", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}
    data = post(emu, "/v1/chat/completions", body).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "" and choice["message"]["reasoning"]
    assert data["usage"]["completion_tokens"] == 10
    off = post(emu, "/v1/chat/completions", {**body, "reasoning_effort": "none"}).json()
    assert off["choices"][0]["message"] == {"role": "assistant",
                                            "content": "".join(ANSWER[:9])}


def test_v1_stream_reasoning_deltas(emu: Emulator) -> None:
    body = {"model": "qwen3:8b", "max_tokens": 3, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    r = post(emu, "/v1/chat/completions", body)
    payloads = [b[len("data: "):] for b in r.text.split("\n\n") if b]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert [c["choices"][0]["delta"].get("reasoning") for c in chunks[:3]] == list(THOUGHT[:3])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_think_on_a_model_without_it(emu: Emulator) -> None:
    r = post(emu, "/api/generate", {"model": "plain:1b", "prompt": "hi", "think": True,
                                    "stream": False})
    assert (r.status_code, r.json()) == (400, {"error": '"plain:1b" does not support thinking'})
    effort = post(emu, "/v1/chat/completions", {
        "model": "plain:1b", "reasoning_effort": "high",
        "messages": [{"role": "user", "content": "hi"}]})
    assert effort.status_code == 400
    assert effort.json()["error"]["message"] == '"plain:1b" does not support thinking'
