"""Planted secrets never appear in any output format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor.redact import Redactor, redact_env, redact_headers, redact_url, redact_value
from tests.conftest import CliRun, closed_port

API_KEY = "sk-live-PLANTED-api-key-5f1c"
BEARER = "PLANTED-bearer-token-77aa"
PROXY_PW = "PLANTED-proxy-pw-9q"
SECRETS = [API_KEY, BEARER, PROXY_PW]


def outputs(cli: Callable[..., CliRun], tmp_path: Path, host: str, *extra: str) -> list[str]:
    env = {"OLLAMA_API_KEY": API_KEY,
           "HTTP_PROXY": f"http://alice:{PROXY_PW}@127.0.0.1:{closed_port()}",
           "https_proxy": f"http://bob:{PROXY_PW}@127.0.0.1:{closed_port()}"}
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
        host = f"127.0.0.1:{closed_port()}"
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


# --------------------------------------------------------------------------------------------
# Pasted text is redacted like every other input

PASTED_SECRETS = ["sk-proj-PLANTEDquerykey0123456789", "sk-PLANTEDenvassign0123456789ab",
                  "PLANTEDbearerInPaste99", "PLANTEDurlpassword7",
                  "hf_PLANTEDhuggingfacetoken12345"]
PASTED = (
    "Traceback (most recent call last):\n"
    '  File "/home/alice/proj/.venv/lib/python3.11/site-packages/httpx/_transports/'
    'default.py", line 72, in map_httpcore_exceptions\n'
    '  File "/home/alice/proj/app.py", line 3, in <module>\n'
    f"GET http://127.0.0.1:1/v1/models?api_key={PASTED_SECRETS[0]}&x=1\n"
    f"OPENAI_API_KEY={PASTED_SECRETS[1]} python app.py\n"
    f"Authorization: Bearer {PASTED_SECRETS[2]}\n"
    f"proxy http://alice:{PASTED_SECRETS[3]}@127.0.0.1:3128 said\n"
    f"HF_TOKEN={PASTED_SECRETS[4]}\n"
    "httpx.ConnectError: [Errno 111] Connection refused\n"
)


def test_pasted_error_secrets_are_masked_in_every_output(cli: Callable[..., CliRun],
                                                          tmp_path: Path) -> None:
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    args = ["check", "--error", PASTED, "--timeout", "1"]
    runs = [cli(*args), cli(*args, "-v"), cli(*args, "--json"), cli(*args, "-o", str(md)),
            cli(*args, "-o", str(js))]
    assert all(r.code in (0, 1) for r in runs), [r.stderr for r in runs]
    texts = [r.stdout + r.stderr for r in runs] + [md.read_text(), js.read_text()]
    for text in texts:
        for secret in PASTED_SECRETS:
            assert secret not in text
    report = md.read_text()
    assert "The error the client printed" in report
    assert "<venv>/lib/python3.11/site-packages/httpx/_transports/default.py" in report
    assert '"~/proj/app.py"' in report
    assert "/home/alice" not in report


def test_secret_shapes_in_free_text() -> None:
    from ollama_doctor.redact import redact_text

    table = [
        ("GET /v1?api_key=sk-abcdefabcdefabcdefab&x=1", "GET /v1?api_key=***&x=1"),
        ("OPENAI_API_KEY=sk-abc python", "OPENAI_API_KEY=*** python"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("{'Authorization': 'Basic dXNlcjpwdw=='}", "{'Authorization': 'Basic ***'}"),
        ("http://admin:hunter2@proxy:3128", "http://admin:***@proxy:3128"),
        ('{"api_key": "abc123"}', '{"api_key": "***"}'),
        ("password: s3cret", "password: ***"),
        ("key sk-ant-api03-abcdefghijklmnopqrstu end", "key *** end"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "***"),
        # ordinary words and numbers stay
        ("max_tokens=512 num_ctx=4096 token limit", "max_tokens=512 num_ctx=4096 token limit"),
        ('WWW-Authenticate: Bearer realm="ollama"', 'WWW-Authenticate: Bearer realm="ollama"'),
        ("use --header 'Authorization: …'", "use --header 'Authorization: …'"),
    ]
    for text, shown in table:
        assert redact_text(text) == shown, text


def test_paths_are_shortened_for_sharing() -> None:
    from ollama_doctor.redact import shorten_path_text

    assert shorten_path_text("/srv/me/x.py /home/bob/a /Users/carol/b /root/c",
                             home="/srv/me", prefix="") == "~/x.py ~/a ~/b ~/c"
    assert shorten_path_text("/opt/app/venv/lib/python3.11/site-packages/x.py",
                             home="/nowhere", prefix="") == (
        "<venv>/lib/python3.11/site-packages/x.py")
    assert shorten_path_text('C:\\Users\\dan\\app.py', home="/x", prefix="") == "~\\app.py"


def _cost(func: Callable[[str], object], text: str) -> float:
    import time

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        func(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("unit", ["a", "a-", "KEY", "a://", "http://u:", "/", "/a/.venv/lib/",
                                  "Authorization:", "?key=", 'A_KEY="', "sk-", "x=", "bearer ",
                                  "/home/", "\x1b[", "\x1b]", "eyJaaaaaaaaa.", "KEYKEY_"])
def test_every_regex_on_untrusted_text_is_linear(unit: str) -> None:
    """1 MB costs about 100 × what 10 kB costs; a quadratic pattern costs 10,000 ×. The ratio
    is compared, never an absolute time, so a busy machine passes."""
    from ollama_doctor.redact import redact_text, shorten_path_text
    from ollama_doctor.sanitize import clean

    def everything(text: str) -> None:
        redact_text(text)
        shorten_path_text(text)
        clean(text)

    small = (unit * (10_000 // len(unit) + 1))[:10_000]
    large = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
    ratio = _cost(everything, large) / max(_cost(everything, small), 1e-4)
    assert ratio < 1_500, ratio


def test_usage_errors_never_print_a_secret(cli: Callable[..., CliRun]) -> None:
    for host in ("http://admin:SECRETPW@127.0.0.1:99999", "http://admin:SECRETPW@ho st",
                 "ftp://admin:SECRETPW@host"):
        run = cli("check", "--host", host)
        assert run.code == 2
        assert "SECRETPW" not in run.stderr and run.stderr.count("\n") == 1
        assert "admin:***@" in run.stderr


def test_api_key_with_a_stray_character_is_a_finding() -> None:
    from ollama_doctor.sanitize import api_key_finding

    assert api_key_finding({"OLLAMA_API_KEY": "sk-good"}) is None
    assert api_key_finding({}) is None
    finding = api_key_finding({"OLLAMA_API_KEY": "PLANTED-key-9\r"})
    assert finding is not None
    assert finding.message.startswith("OLLAMA_API_KEY holds a carriage return (\\r) at the end")
    assert finding.evidence == {"variable": "OLLAMA_API_KEY",
                                "stray_character": "a carriage return (\\r) at the end",
                                "length": 14}
    assert "PLANTED" not in repr(finding)


# --------------------------------------------------------------------------------------------
# A crashed probe's message and --debug traceback: redacted and sanitised where recorded

CRASH_KEY = "sk-PLANTEDcrashkey0123456789abcd"
# The real command line with one probe replaced by one that raises an exception whose message
# carries a bearer token and a server's escape sequences (a title change, a screen clear).
CRASHING_CLI = (
    "import sys\n"
    "import ollama_doctor.probes.ulimit as probe\n"
    "def run(ctx):\n"
    f"    raise RuntimeError('upstream said Authorization: Bearer {CRASH_KEY} '\n"
    "                       '\\x1b]0;pwned\\x07\\x1b[2J and more')\n"
    "probe.run = run\n"
    "from ollama_doctor.cli import main\n"
    "main(sys.argv[1:])\n"
)


def _crashing_cli(*args: str, env: dict[str, str] | None = None) -> CliRun:
    import subprocess
    import sys

    from tests.conftest import clean_environ

    proc = subprocess.run([sys.executable, "-c", CRASHING_CLI, *args], capture_output=True,
                          text=True, env=clean_environ(env), timeout=60)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def test_a_crash_traceback_carries_no_secret_and_no_escape_in_any_output(
        tmp_path: Path, emulator: Any) -> None:
    texts = outputs(_crashing_cli, tmp_path, emulator().url, "--debug")
    joined = "\n".join(texts)
    assert "RuntimeError: upstream said Authorization: Bearer *** " in joined
    assert "Traceback (most recent call last):" in joined  # --debug shows it
    for text in texts:
        for secret in [CRASH_KEY, *SECRETS]:
            assert secret not in text
        assert "\x1b" not in text and "\\u001b" not in text and "\x07" not in text
        assert "pwned" not in text


def test_scrub_redacted_masks_known_secrets_and_then_their_shapes() -> None:
    """report.scrub's fast path: strings already through redact_text get redact_text again
    only when a known secret was replaced; nothing else changes."""
    from ollama_doctor.redact import Redactor, redact_text

    redactor = Redactor(["s3cr3t-value-123"])
    plain = redact_text("GET http://127.0.0.1:11434/api/tags → HTTP 200")
    assert redactor.scrub_redacted(plain) is plain
    planted = redact_text("token s3cr3t-value-123 and OLLAMA_API_KEY=abcdefgh1234")
    assert redactor.scrub_redacted(planted) == redactor.scrub(planted)
    assert "s3cr3t-value-123" not in redactor.scrub_redacted(planted)
    assert "abcdefgh1234" not in redactor.scrub_redacted(planted)
    # the cache answers short strings as the uncached path does
    for text in ("Bearer abcdefghijklmnop", "x" * 300 + " api_key=zzzzzzzz9"):
        assert redact_text(text) == redact_text(text) and "abcdefghijklmnop" not in \
            redact_text(text) and "zzzzzzzz9" not in redact_text(text)
