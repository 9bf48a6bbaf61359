"""Fuzz tier: target parsing, pasted-error parsing, log-line classification and redaction
take any text without an exception, never let a planted secret through, and stay fast.

Default examples are few (the suite stays quick); ``HYPOTHESIS_PROFILE=fuzz`` runs thousands:
``HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz.py -p no:cacheprovider``.
"""

from __future__ import annotations

import json
import os
import time
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ollama_doctor.errortext import analyse
from ollama_doctor.logs import LogText, classify, findings, logs_diagnosis, logs_document
from ollama_doctor.redact import Redactor, redact_text, shorten_path_text
from ollama_doctor.report import scrub
from ollama_doctor.sanitize import clean
from ollama_doctor.target import TargetError, parse_target

settings.register_profile("default", max_examples=40, deadline=timedelta(seconds=5),
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=3000, deadline=timedelta(seconds=5),
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

T = TypeVar("T")
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
BOUND_S = 2.0  # per example: catches a runaway (quadratic) pattern, not a slow machine

# Text a client, a server or a log really prints, to mix with noise.
FRAGMENTS = [
    "httpx.ConnectError: [Errno 111] Connection refused",
    "ollama._types.ResponseError: model 'llama3.2' not found (status code: 404)",
    "Error: pull model manifest: file does not exist",
    "openai.APIConnectionError: Connection error.",
    "HTTPConnectionPool(host='localhost', port=11434): Read timed out. (read timeout=120)",
    "requests.exceptions.ProxyError: Unable to connect to proxy",
    'time=2026-11-25T10:00:07.920Z level=INFO source=sched.go:470 msg="Load failed" model=/x '
    'error="llama-server reported out-of-memory during startup: cudaMalloc failed"',
    '[GIN] 2026/11/25 - 10:05:07 | 500 |   5m0s |   127.0.0.1 | POST "/api/chat"',
    "http://127.0.0.1:11434/api/generate", "OLLAMA_HOST=0.0.0.0", "\x1b]0;title\x07",
    "\x1b[2J", "\r\n", "\x00", "\u202e", "[bold]x[/]", "</details>", "sk-", "Bearer", "://",
]
noise = st.text(max_size=200)
fragment = st.sampled_from(FRAGMENTS)
pieces = st.lists(st.one_of(fragment, noise), max_size=12)

# A secret in a shape the redactor knows, around a random (alphanumeric) token.
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                min_size=20, max_size=40).map(lambda s: "PLNT" + s)
SHAPES = [
    lambda t: f"sk-{t}",
    lambda t: f"sk-proj-{t}",
    lambda t: f"Authorization: Bearer {t}",
    lambda t: f"authorization: Basic {t}",
    lambda t: f"http://127.0.0.1:11434/v1/models?api_key={t}&x=1",
    lambda t: f"https://alice:{t}@proxy.example:3128/",
    lambda t: f"OPENAI_API_KEY={t}",
    lambda t: f"HF_TOKEN={t}",
    lambda t: f'{{"api_key": "{t}"}}',
    lambda t: f"password: {t}",
]
shape = st.sampled_from(range(len(SHAPES)))
SEPARATORS = [" ", "\n", "\t", " | ", "\r\n"]


def _planted(parts: list[str], secret: str, where: int) -> str:
    where = min(where, len(parts))
    return "".join(p + SEPARATORS[i % len(SEPARATORS)]
                   for i, p in enumerate([*parts[:where], secret, *parts[where:]]))


def _timed(func: Callable[..., T], *args: Any) -> T:
    started = time.perf_counter()
    result = func(*args)
    assert time.perf_counter() - started < BOUND_S
    return result


@given(st.one_of(noise, st.builds("".join, pieces)))
def test_target_parsing_never_raises_anything_else(text: str) -> None:
    try:
        target = _timed(parse_target, text)
    except TargetError as exc:
        assert str(exc)
    else:
        assert target.port is None or 0 < target.port < 65536


@given(pieces, token, shape, st.integers(0, 12))
def test_pasted_error_analysis_is_total_and_leaks_no_secret(
        parts: list[str], secret: str, kind: int, where: int) -> None:
    text = _planted(parts, SHAPES[kind](secret), where)
    analysis = _timed(analyse, text)
    doc = scrub(analysis.to_dict(), Redactor())
    assert secret not in json.dumps(doc, ensure_ascii=False)


@given(pieces, token, shape, st.integers(0, 12))
def test_redaction_masks_every_planted_secret(parts: list[str], secret: str, kind: int,
                                              where: int) -> None:
    text = _planted(parts, SHAPES[kind](secret), where)
    once = _timed(redact_text, text)
    assert secret not in once
    assert redact_text(once) == once  # masking is stable
    assert secret not in shorten_path_text(once)


@given(st.lists(st.one_of(fragment, noise, st.builds("".join, pieces)), max_size=30), token)
def test_log_classification_is_total_and_its_text_is_clean(lines: list[str],
                                                           secret: str) -> None:
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    lines.append(f"OLLAMA_API_KEY={secret} level=ERROR msg=\"request failed\"")
    cls = _timed(classify, lines)
    log = LogText("fuzz.log", "file", lines=lines)
    found = findings(cls, "fuzz.log")
    doc = logs_document(log, cls, found)
    doc["diagnosis"], doc["summary"] = logs_diagnosis(found, "fuzz.log")
    text = _rendered_log(doc)
    assert secret not in text and secret not in json.dumps(doc, ensure_ascii=False)
    assert not [c for c in text if c != "\n" and (unicodedata.category(c) == "Cc"
                                                  or c in BIDI)]


def _rendered_log(doc: dict[str, object]) -> str:
    import io

    from ollama_doctor import render

    buffer = io.StringIO()
    render.logs_report(doc, render.console(buffer, width=100))
    return buffer.getvalue()


@given(st.text(max_size=2000))
def test_clean_leaves_no_control_character(text: str) -> None:
    shown = _timed(clean, text)
    assert not [c for c in shown if unicodedata.category(c) == "Cc"]
    assert clean(shown) == shown
