"""OLLAMA_HOST parsing follows ollama-python's _parse_host (docs/ollama-wire.md §6.1)."""

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


# -- which variable gives the target depends on the client (--client) -------------------------


def _target(*args: str, env: dict[str, str]) -> dict[str, object]:
    from tests.conftest import closed_port, run_cli

    dead = f"http://127.0.0.1:{closed_port()}"
    run = run_cli("probe", "reachability", "--json", "--timeout", "1",
                  *(a.replace("DEAD", dead) for a in args),
                  env={k: v.replace("DEAD", dead) for k, v in env.items()})
    assert run.code in (0, 1), run.stderr
    target: dict[str, object] = run.json()["target"]
    return {"url": str(target["url"]).replace(dead, "DEAD"), "source": target["source"]}


@pytest.mark.parametrize(("args", "env", "expected"), [
    # ollama-python reads OLLAMA_HOST
    ((), {"OLLAMA_HOST": "DEAD"}, {"url": "DEAD", "source": "OLLAMA_HOST"}),
    # the OpenAI SDK does not: its base URL comes from OPENAI_BASE_URL (the /v1 is its base path)
    (("--client", "openai-python"), {"OLLAMA_HOST": "http://10.9.9.9:1",
                                     "OPENAI_BASE_URL": "DEAD/v1"},
     {"url": "DEAD/v1", "source": "OPENAI_BASE_URL"}),
    # litellm reads OLLAMA_API_BASE, @langchain/ollama OLLAMA_BASE_URL; neither OLLAMA_HOST
    (("--client", "litellm"), {"OLLAMA_HOST": "http://10.9.9.9:1", "OLLAMA_API_BASE": "DEAD"},
     {"url": "DEAD", "source": "OLLAMA_API_BASE"}),
    (("--client", "langchain-js"), {"OLLAMA_HOST": "http://10.9.9.9:1",
                                    "OLLAMA_BASE_URL": "DEAD"},
     {"url": "DEAD", "source": "OLLAMA_BASE_URL"}),
    (("--client", "litellm"), {"OLLAMA_HOST": "http://10.9.9.9:1"},
     {"url": "http://127.0.0.1:11434", "source": "default"}),
    # neither variable reaches ollama-js or curl: the default server
    (("--client", "ollama-js"), {"OLLAMA_HOST": "http://10.9.9.9:1"},
     {"url": "http://127.0.0.1:11434", "source": "default"}),
    (("--client", "curl"), {"OLLAMA_HOST": "http://10.9.9.9:1"},
     {"url": "http://127.0.0.1:11434", "source": "default"}),
    # --host wins over every variable
    (("--client", "openai-python", "--host", "DEAD"), {"OPENAI_BASE_URL": "http://10.9.9.9:1"},
     {"url": "DEAD", "source": "option"}),
])
def test_target_comes_from_the_clients_own_variable(args: tuple[str, ...], env: dict[str, str],
                                                     expected: dict[str, object]) -> None:
    assert _target(*args, env=env) == expected


def test_pasted_error_picks_the_client_and_its_target() -> None:
    """A pasted openai traceback: the client is openai-python, whose rules apply."""
    from tests.conftest import closed_port, run_cli

    port = closed_port()
    text = ("Traceback (most recent call last):\n"
            '  File "/app/.venv/lib/python3.11/site-packages/openai/_base_client.py", line 1003, '
            "in request\n"
            "openai.APIConnectionError: Connection error.\n")
    run = run_cli("check", "--json", "--timeout", "1", "--error", text,
                  env={"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
                       "OLLAMA_HOST": "http://10.9.9.9:1"})
    doc = run.json()
    assert doc["target"]["url"] == f"http://127.0.0.1:{port}/v1"
    assert doc["target"]["source"] == "OPENAI_BASE_URL"
    path = next(c for c in doc["checks"] if c["id"] == "reachability")["facts"]["path"]
    assert path["client"] == "openai-python"
