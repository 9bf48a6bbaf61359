"""OLLAMA_HOST parsing follows ollama-python's _parse_host (ollama-facts §6.1)."""

from __future__ import annotations

import pytest

from ollama_doctor.target import (
    TargetError,
    base_path_kind,
    go_client_note,
    parse_target,
)

CASES = [
    # value, url the client builds, host dialled, port
    (None, "http://127.0.0.1:11434", "127.0.0.1", 11434),
    ("", "http://127.0.0.1:11434", "127.0.0.1", 11434),
    ("example.com", "http://example.com:11434", "example.com", 11434),
    ("example.com:56789", "http://example.com:56789", "example.com", 56789),
    ("http://example.com", "http://example.com:80", "example.com", 80),
    ("https://example.com", "https://example.com:443", "example.com", 443),
    ("https://example.com:56789", "https://example.com:56789", "example.com", 56789),
    ("example.com:56789/path/", "http://example.com:56789/path", "example.com", 56789),
    ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1", "127.0.0.1", 11434),
    (":56789", "http://127.0.0.1:56789", "127.0.0.1", 56789),
    ("::1", "http://[::1]:11434", "::1", 11434),
    ("[::1]", "http://[::1]:11434", "::1", 11434),
    ("[::1]:1337", "http://[::1]:1337", "::1", 1337),
    ("http://[0001:002:003:0004::1]:56789", "http://[0001:002:003:0004::1]:56789",
     "0001:002:003:0004::1", 56789),
    ("0.0.0.0", "http://0.0.0.0:11434", "127.0.0.1", 11434),
    ("0.0.0.0:11434", "http://0.0.0.0:11434", "127.0.0.1", 11434),
    ("[::]:11434", "http://[::]:11434", "::1", 11434),
    ("HTTP://LOCALHOST:11434", "http://localhost:11434", "localhost", 11434),
]


@pytest.mark.parametrize(("value", "url", "dial", "port"), CASES)
def test_parse_like_ollama_python(value: str | None, url: str, dial: str, port: int) -> None:
    target = parse_target(value, "option")
    assert target.url == url
    assert target.dial_host == dial
    assert target.port == port


def test_default_source_and_unspecified() -> None:
    assert parse_target(None).source == "default"
    assert parse_target("0.0.0.0").is_unspecified
    assert not parse_target("127.0.0.1").is_unspecified
    assert parse_target("0.0.0.0:8080").root_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(("value", "message"), [
    ("ftp://host", "unknown scheme 'ftp'"),
    ("http://", "the host is empty"),
    ("host:0", "port 0 is out of range"),
    ("host:70000", "port 70000 is out of range"),
    ("host:abc", "port 'abc' is not a number"),
    ("host:", "the port after ':' is empty"),
    ("http://user:pw@host", "credentials in the URL"),
    ("bad host", "white space"),
    ("[::1", "unclosed '['"),
    ("exa$mple.com", "not a valid host name"),
    ("1:2:3:zz::1", "not an IPv6 address"),
])
def test_bad_targets_name_the_value(value: str, message: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(value)
    assert message in str(info.value)
    assert repr(value) in str(info.value)


def test_go_client_differences() -> None:
    assert "every interface" in (go_client_note(parse_target(":11434")) or "")
    assert "https://ollama.com:443" in (go_client_note(parse_target("ollama.com")) or "")
    assert go_client_note(parse_target("https://ollama.com")) is None
    assert go_client_note(parse_target("127.0.0.1:11434")) is None


@pytest.mark.parametrize(("path", "kind"), [
    ("", "root"), ("/v1", "openai"), ("/v1/", "openai"), ("/ollama/v1", "openai"),
    ("/api", "api"), ("/api/chat", "api"), ("/ollama", "other"), ("/ollama/api", "api"),
])
def test_base_path_kind(path: str, kind: str) -> None:
    assert base_path_kind(path) == kind


def test_loopback_detection() -> None:
    assert parse_target("localhost").is_loopback
    assert parse_target("127.0.0.5").is_loopback
    assert parse_target("[::1]").is_loopback
    assert parse_target("0.0.0.0").is_loopback  # dialled as 127.0.0.1
    assert not parse_target("10.1.2.3").is_loopback
    assert not parse_target("ollama.example.com").is_loopback
