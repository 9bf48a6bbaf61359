"""Planted secrets never appear in any output format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor.redact import Redactor, redact_env, redact_headers, redact_url, redact_value
from tests.conftest import CliRun, free_port

API_KEY = "sk-live-PLANTED-api-key-5f1c"
BEARER = "PLANTED-bearer-token-77aa"
PROXY_PW = "PLANTED-proxy-pw-9q"
SECRETS = [API_KEY, BEARER, PROXY_PW]


def outputs(cli: Callable[..., CliRun], tmp_path: Path, host: str, *extra: str) -> list[str]:
    env = {"OLLAMA_API_KEY": API_KEY,
           "HTTP_PROXY": f"http://alice:{PROXY_PW}@127.0.0.1:{free_port()}",
           "https_proxy": f"http://bob:{PROXY_PW}@127.0.0.1:{free_port()}"}
    args = ["check", "--host", host, "--header", f"Authorization: Bearer {BEARER}",
            "--header", f"X-Api-Key: {API_KEY}", "--timeout", "2", *extra]
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    runs = [cli(*args, env=env), cli(*args, "-v", env=env), cli(*args, "--json", env=env),
            cli(*args, "-o", str(md), env=env), cli(*args, "-o", str(js), "--debug", env=env)]
    texts = [r.stdout + r.stderr for r in runs] + [md.read_text(), js.read_text()]
    assert all(r.code in (0, 1) for r in runs), [r.stderr for r in runs]
    return texts


@pytest.mark.parametrize("scenario", ["closed", "emulator", "auth-proxy"])
def test_no_output_contains_a_planted_secret(cli: Callable[..., CliRun], tmp_path: Path,
                                             emulator: Any, scenario: str) -> None:
    if scenario == "closed":
        host = f"127.0.0.1:{free_port()}"
    elif scenario == "emulator":
        host = emulator().url
    else:
        host = emulator(auth="some-other-token").url
    for text in outputs(cli, tmp_path, host):
        assert text.strip()
        for secret in SECRETS:
            assert secret not in text


def test_redaction_units() -> None:
    assert redact_url("http://u:pw@proxy:3128") == "http://u:***@proxy:3128"
    assert redact_url("http://proxy:3128") == "http://proxy:3128"
    assert redact_headers({"Authorization": "Bearer x", "Accept": "a"}) == {
        "Authorization": "***", "Accept": "a"}
    assert redact_env({"OLLAMA_API_KEY": "k", "HTTPS_PROXY": "http://u:p@h:1",
                       "OLLAMA_HOST": "h"}) == {
        "OLLAMA_API_KEY": "***", "HTTPS_PROXY": "http://u:***@h:1", "OLLAMA_HOST": "h"}
    assert redact_value({"authorization": "Bearer abcdef", "note": "Bearer abcdef1234"}) == {
        "authorization": "***", "note": "Bearer ***"}
    assert Redactor(["abcd1234"]).scrub("key=abcd1234!") == "key=***!"
    # a challenge is evidence, not a secret
    challenge = 'Bearer realm="ollama", error="invalid_token"'
    assert redact_headers({"WWW-Authenticate": challenge}) == {"WWW-Authenticate": challenge}
    assert redact_value({"note": challenge}) == {"note": challenge}
