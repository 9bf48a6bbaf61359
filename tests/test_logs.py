"""The server-log reader and classifier (``ollama_doctor.logs``): pure parsers on fixture lines,
bounded reads of hostile files, the emulator's own log output, and ``run_logs_command``."""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_doctor import logread, logs
from ollama_doctor.result import Severity

DATA = Path(__file__).parent / "data" / "logs"


def lines_of(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def causes(found: Sequence[Any]) -> list[tuple[str, str]]:
    return [(f.cause, f.severity.value) for f in found]


# ---------------------------------------------------------------------------------------------
# signatures


def test_every_signature_has_a_fixture_whose_every_line_it_matches() -> None:
    for sig in logs.SIGNATURES:
        path = DATA / f"sig-{sig.id}.log"
        assert path.is_file(), f"no fixture for signature {sig.id}"
        for line in lines_of(path.name):
            hits = logs.classify([line]).hits
            assert sig.id in hits, (sig.id, line)


# One line → exactly the signatures that count for it. Generic signatures (error, timeout,
# quota) count only when no specific one explained the line; "Load failed" only when no root
# cause (out of memory, terminated, outdated) did.
LINE_TABLE: list[tuple[str, set[str]]] = [
    ('time=2026-11-25T10:00:08.844Z level=ERROR source=sched.go:484 msg="error loading llama '
     'server" error="llama-server process has terminated: signal: killed"',
     {"oom-killed", "runner-terminated"}),
    ('time=2026-11-25T10:00:07.920Z level=INFO source=sched.go:470 msg="Load failed" model=/x '
     'error="llama-server reported out-of-memory during startup: cudaMalloc failed: out of '
     'memory"', {"oom"}),
    ('time=2026-11-25T10:00:09.273Z level=INFO source=sched.go:470 msg="Load failed" model=/x '
     'error="llama runner process has terminated: exit status 2"', {"runner-terminated"}),
    ('time=2026-11-25T10:00:09.273Z level=INFO source=sched.go:470 msg="Load failed" model=/x '
     'error="unable to load model: /x"', {"load-failed"}),
    # an aborted load is logged as an error loading the server, with "context canceled"
    ('time=2026-11-25T20:22:10.705Z level=ERROR source=sched.go:736 msg="error loading llama '
     'server" error="context canceled"', set()),
    ('[GIN] 2026/11/25 - 10:05:07 | 500 |          5m0s |       127.0.0.1 | POST     '
     '"/api/chat"', {"http-5xx"}),
    ('[GIN] 2026/11/25 - 10:05:07 | 200 |          5m0s |       127.0.0.1 | POST     '
     '"/api/chat"', set()),
    # "499" in a path is not a 499 status; the path is none of Ollama's routes
    ('[GIN] 2026/11/25 - 10:05:07 | 404 |     812.1µs |       127.0.0.1 | POST     '
     '"/api/499"', {"http-404-path"}),
    # a 404 on a model route is a missing model, on /api/show (before a pull) routine
    ('[GIN] 2026/11/25 - 10:05:07 | 404 |     812.1µs |       127.0.0.1 | POST     '
     '"/api/chat"', {"http-404-model"}),
    ('[GIN] 2026/11/25 - 10:05:07 | 404 |     812.1µs |       127.0.0.1 | POST     '
     '"/api/show"', set()),
    ('[GIN] 2026/11/25 - 10:05:07 | 404 |     812.1µs |       127.0.0.1 | GET      '
     '"/v1/models/llama3.2"', set()),
    # Ollama's own 403: a refused CORS preflight is an Origin; other methods Origin or Host
    ('[GIN] 2026/11/25 - 10:05:07 | 403 |      21.3µs |       127.0.0.1 | OPTIONS  '
     '"/api/chat"', {"http-403-preflight"}),
    ('[GIN] 2026/11/25 - 10:05:07 | 403 |      21.3µs |       127.0.0.1 | POST     '
     '"/api/chat"', {"http-403"}),
    ("load_tensors: offloaded 33/33 layers to GPU", {"partial-offload"}),  # a fact only
    ('time=2026-11-25T10:00:00.000Z level=ERROR source=x.go:1 msg="truncating input prompt" '
     'limit=2048 prompt=5065', {"prompt-truncated"}),
    ('time=2026-11-25T10:00:00.000Z level=ERROR source=x.go:1 msg="request failed" '
     'error="context deadline exceeded"', {"error-line", "timeout-line"}),
    # the guide's words inside healthy lines count for nothing
    ('time=2026-11-25T10:00:00.000Z level=INFO source=server.go:641 msg="loaded model" '
     'name=error-free-quota-timeout-llama:latest', set()),
    ('time=2026-11-25T10:00:00.000Z level=DEBUG source=sched.go:401 msg="timer expired, '
     'expiring to unload" runner.timeout=5m0s error=none', set()),
    ("llama_model_loader: - kv  21: tokenizer.ggml.eos_token_id u32 = 128009", set()),
    ('time=2026-11-25T10:00:00.000Z level=INFO source=routes.go:1951 msg="server config" '
     'env="map[OLLAMA_LOAD_TIMEOUT:5m0s OLLAMA_HOST:http://127.0.0.1:11434]"', {"server-config"}),
    ("Nov 25 10:00:00 box ollama[812]: Error: listen tcp 127.0.0.1:11434: bind: address "
     "already in use", {"address-in-use"}),
    ("Nov 25 10:00:00 box ollama[812]: Error: unknown flag", {"error-line"}),
    ("", set()),
    ("\ufffd\ufffd garbage \x7f", set()),
]


@pytest.mark.parametrize(("line", "expected"), LINE_TABLE)
def test_one_line_matches_exactly(line: str, expected: set[str]) -> None:
    assert set(logs.classify([line]).hits) == expected


# fixture → the findings, in order (root causes first)
SCENARIOS: list[tuple[str, list[tuple[str, str]]]] = [
    ("sig-oom.log", [("out-of-memory", "error")]),
    ("sig-oom-killed.log", [("out-of-memory", "error"), ("runner-crashed", "error")]),
    ("sig-runner-terminated.log", [("runner-crashed", "error")]),
    ("sig-runner-stopped.log", [("runner-crashed", "error")]),
    ("sig-runner-fatal.log", [("runner-crashed", "warning")]),
    ("sig-load-failed.log", [("runner-crashed", "warning")]),
    ("sig-load-timeout.log", [("slow-model-load", "error")]),
    ("sig-load-aborted.log", [("slow-model-load", "error")]),
    ("sig-http-499.log", [("slow-model-load", "warning")]),
    ("sig-gpu-discovery-failed.log", [("gpu-offload", "warning")]),
    ("sig-cpu-only.log", [("gpu-offload", "info")]),
    ("sig-partial-offload.log", [("gpu-offload", "warning")]),
    ("sig-prompt-truncated.log", [("prompt-truncated", "warning")]),
    ("sig-too-many-open-files.log", [("fd-limit-low", "error")]),
    ("sig-outdated.log", [("ollama-outdated", "error"), ("runner-crashed", "error")]),
    ("sig-address-in-use.log", [("wrong-instance", "warning")]),
    ("sig-http-5xx.log", [("server-error", "info")]),
    ("sig-http-429.log", [("rate-limited", "info")]),
    ("sig-error-line.log", [("server-error", "info")]),
    ("sig-timeout-line.log", [("server-error", "info")]),
    ("sig-quota-line.log", [("rate-limited", "info")]),
    ("sig-listening.log", []),
    ("sig-server-config.log", []),
    ("sig-load-finished.log", []),
    ("sig-completion-aborted.log", []),
    ("healthy.log", []),
    ("healthy-journal.log", []),
    ("healthy-cpu.log", [("gpu-offload", "info")]),  # a CPU-only box running as it should
]


@pytest.mark.parametrize(("name", "expected"), SCENARIOS)
def test_fixture_findings(name: str, expected: list[tuple[str, str]]) -> None:
    found = logs.findings(logs.classify(lines_of(name)), name)
    assert causes(found) == expected


def test_finding_quotes_the_line_and_counts_distinct_lines() -> None:
    found = logs.findings(logs.classify(lines_of("sig-oom-killed.log")), "journal")
    oom = found[0]
    assert oom.cause == "out-of-memory" and oom.code == 500
    assert oom.confidence.value == "medium"
    assert oom.evidence["count"] == 2
    [sig] = oom.evidence["signatures"]
    assert sig["signature"] == "oom-killed" and sig["count"] == 2
    assert sig["first"] == {"line": 1, "text": lines_of("sig-oom-killed.log")[0]}
    assert sig["last"]["line"] == 2
    assert oom.message.startswith("The server log (journal) shows the model ran out of memory: "
                                  "2 lines, the last: time=2024-06-01T10:00:08.844Z")


def test_client_timeout_shorter_than_load_needs_both_lines_for_error() -> None:
    lines = lines_of("sig-load-aborted.log")[:1] + lines_of("sig-http-499.log")[:1] + [
        'time=2026-11-25T10:00:09.327Z level=INFO source=llama_server.go:1362 '
        'msg="llama-server started in 42.5 seconds"']
    [finding] = logs.findings(logs.classify(lines), "x")
    assert (finding.cause, finding.severity) == ("slow-model-load", Severity.ERROR)
    assert finding.evidence["load_seconds_max"] == 42.5
    assert "(loads took up to 42.5 s)" in finding.message
    assert "aborts the load" in finding.fix[0].text


def test_partial_offload_reports_n_of_m_and_cpu_machines_stay_quiet() -> None:
    [finding] = logs.findings(logs.classify(["load_tensors: offloaded 20/33 layers to GPU"]), "x")
    assert finding.evidence["offload"] == {"offloaded": 20, "layers": 33, "line": 1}
    assert "(20/33 layers on the GPU)" in finding.message
    # no GPU found, nothing offloaded: the expected CPU run, a note only
    cpu = [*lines_of("sig-cpu-only.log")[:1], "load_tensors: offloaded 0/29 layers to GPU"]
    assert causes(logs.findings(logs.classify(cpu), "x")) == [("gpu-offload", "info")]
    # a GPU found and still 0 layers on it: a warning
    gpu = ["load_tensors: offloaded 0/29 layers to GPU"]
    assert causes(logs.findings(logs.classify(gpu), "x")) == [("gpu-offload", "warning")]


def test_evidence_before_the_last_restart_counts_one_level_lower() -> None:
    oom = lines_of("sig-oom.log")[:1]
    start = lines_of("sig-listening.log")[:1]
    before = logs.findings(logs.classify(oom + start), "x")
    after = logs.findings(logs.classify(start + oom), "x")
    assert causes(before) == [("out-of-memory", "warning")]
    assert before[0].evidence["before_last_start"] is True
    assert "(all before the server's last start)" in before[0].message
    assert causes(after) == [("out-of-memory", "error")]


def test_facts_from_a_log() -> None:
    cls = logs.classify(lines_of("healthy.log"))
    facts = cls.facts()
    assert facts["listening"] == [{"line": 5, "address": "127.0.0.1:11434",
                                   "version": "0.33.0"}]
    assert facts["load_seconds"] == {"count": 1, "last": 2.31, "max": 2.31}
    assert facts["offload"] == {"offloaded": 29, "layers": 29, "line": 19}
    assert cls.server_env is not None and cls.server_env_line == 1
    assert cls.server_env["OLLAMA_HOST"] == "http://127.0.0.1:11434"
    journal = logs.classify(lines_of("healthy-journal.log")).facts()
    assert journal["listening"][0]["address"] == "[::]:11434"
    assert journal["listening"][0]["version"] == "0.12.0"


# ---------------------------------------------------------------------------------------------
# the server config line


GO_MAPS: list[tuple[str, dict[str, Any]]] = [
    ("map[]", {}),
    ("map[A:1]", {"A": "1"}),
    ("map[A: B:]", {"A": "", "B": ""}),
    ("map[OLLAMA_HOST:http://0.0.0.0:11434 OLLAMA_KEEP_ALIVE:5m0s]",
     {"OLLAMA_HOST": "http://0.0.0.0:11434", "OLLAMA_KEEP_ALIVE": "5m0s"}),
    ("map[OLLAMA_ORIGINS:[http://localhost https://x.example:*] X:[] Y:a]",
     {"OLLAMA_ORIGINS": ["http://localhost", "https://x.example:*"], "X": [], "Y": "a"}),
    ("map[NO_PROXY:localhost,127.0.0.1 https_proxy:http://u:p@proxy:3128 no_proxy:]",
     {"NO_PROXY": "localhost,127.0.0.1", "https_proxy": "http://u:p@proxy:3128",
      "no_proxy": ""}),
    ("map[A:[x [y z]] B:2]", {"A": ["x", "[y", "z]"], "B": "2"}),
]


@pytest.mark.parametrize(("text", "expected"), GO_MAPS)
def test_parse_go_map(text: str, expected: dict[str, Any]) -> None:
    assert logs.parse_go_map(text) == expected


@pytest.mark.parametrize("text", ["", "map[", "{A:1}", "map[:x]", "map[A:[x]"])
def test_parse_go_map_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        logs.parse_go_map(text)


def test_server_config_env_unquotes_slog() -> None:
    line = ('time=x level=INFO source=routes.go:1951 msg="server config" '
            'env="map[OLLAMA_ORIGINS:[a\\"b c] OLLAMA_HOST:http://[::]:11434 Z:\\u00e9]"')
    assert logs.server_config_env(line) == {"OLLAMA_ORIGINS": ['a"b', "c"],
                                            "OLLAMA_HOST": "http://[::]:11434", "Z": "é"}
    assert logs.server_config_env('msg="server config" env=map[A:1]') == {"A": "1"}
    assert logs.server_config_env('msg="server config" env="not a map"') is None
    assert logs.server_config_env('msg="server config"') is None
    assert logs.go_unquote(r"a\tb\\c\x41\q") == "a\tb\\cAq"


# ---------------------------------------------------------------------------------------------
# redaction


SECRET_LINES = [
    'msg="server config" env="map[HTTPS_PROXY:http://alice:s3cretpw@proxy.corp:3128 '
    'OLLAMA_API_KEY:sk-live-abcdef123456]"',
    "[GIN] POST /api/chat Authorization: Bearer tok-9f8e7d6c5b4a",
    "level=ERROR msg=x OLLAMA_API_KEY=sk-live-abcdef123456 api_key=sk-other-777777",
    "level=ERROR msg=x my-planted-secret-value",
]


def test_quoted_lines_are_redacted() -> None:
    cls = logs.classify(SECRET_LINES, ["my-planted-secret-value"])
    text = json.dumps([item for item in cls.listed])
    for secret in ("s3cretpw", "sk-live-abcdef123456", "tok-9f8e7d6c5b4a", "sk-other-777777",
                   "my-planted-secret-value"):
        assert secret not in text
    assert "alice:***@proxy.corp" in text


def test_logs_command_redacts_the_environment_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text("\n".join(SECRET_LINES) + "\n")
    env = {"OLLAMA_API_KEY": "my-planted-secret-value"}
    for json_out in (True, False):
        code, out = logs.run_logs_command(str(path), 100, json_out, io.StringIO(), env,
                                          tmp_path)
        assert code == 0
        for secret in ("s3cretpw", "sk-live-abcdef123456", "tok-9f8e7d6c5b4a",
                       "my-planted-secret-value", "sk-other-777777"):
            assert secret not in out
    doc = json.loads(logs.run_logs_command(str(path), 100, True, io.StringIO(), env,
                                           tmp_path)[1])
    assert doc["facts"]["server_env"] == {"HTTPS_PROXY": "http://alice:***@proxy.corp:3128",
                                          "OLLAMA_API_KEY": "***"}


def test_logs_text_prompts_only_shell_lines(tmp_path: Path) -> None:
    """A fix line shows `$` only when it is typed into a shell: the server's environment line
    is labelled ``env:``, as ``check`` shows it."""
    text = "\n".join(lines_of("sig-load-timeout.log") + lines_of("sig-too-many-open-files.log"))
    path = tmp_path / "server.log"
    path.write_text(text + "\n")
    code, out = logs.run_logs_command(str(path), 100, False, io.StringIO(), {}, tmp_path)
    assert code == 1  # an error-level cause was found
    fixes = [line.strip() for line in out.splitlines() if line.startswith("      ")]
    assert "env: OLLAMA_LOAD_TIMEOUT=15m" in fixes
    assert "$ ulimit -n 65536 && ollama serve" in fixes
    assert not [line for line in fixes if line.startswith("$ OLLAMA_")]


# ---------------------------------------------------------------------------------------------
# bounded reading


def test_tail_file_returns_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"".join(b"line %d\r\n" % i for i in range(5000)) + b"last, no newline")
    got = logread.tail_file(path, 3)
    assert got.ok and got.lines == ["line 4998", "line 4999", "last, no newline"]
    assert got.complete is False and got.bytes_read < 64 * 1024
    small = tmp_path / "b.log"
    small.write_text("\n\none\n\n two \n")
    whole = logread.tail_file(small, 10)
    assert whole.lines == ["one", " two "] and whole.complete is True


def test_a_10_gb_sparse_log_is_read_from_its_end_only(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    subprocess.run(["truncate", "-s", "10G", str(path)], check=True)
    tail = lines_of("sig-oom.log")[:2]
    with path.open("ab") as handle:
        handle.write(b"\n" + "\n".join(tail).encode() + b"\n")
    assert path.stat().st_size > 10 * 1024**3
    got = logread.tail_file(path, 2000)  # bounded by bytes read, not by a clock (busy machines)
    assert got.lines == tail  # the 10 GB of NULs before them are no lines at all
    assert got.bytes_read <= logread.MAX_TAIL_BYTES and got.complete is False
    # the whole command on it, end to end, is bounded too
    started = time.monotonic()
    code, out = logs.run_logs_command(str(path), 2000, True, io.StringIO(), {}, tmp_path)
    assert time.monotonic() - started < 2.0
    assert code == 1 and [c["cause"] for c in json.loads(out)["causes"]] == ["out-of-memory"]


def test_garbage_without_newlines_is_one_cut_line(tmp_path: Path) -> None:
    rng = random.Random(5)
    data = rng.randbytes(3 * 1024 * 1024).replace(b"\n", b"\x00\xff")
    path = tmp_path / "garbage.log"
    path.write_bytes(data)
    got = logread.tail_file(path, 2000)
    assert got.ok and len(got.lines) == 1 and got.long_lines == 1
    assert len(got.lines[0]) == logread.MAX_LINE_CHARS + 1 and got.lines[0].endswith("…")
    cls = logs.classify(got.lines)
    assert logs.findings(cls, "garbage") == [] or all(
        f.severity == Severity.INFO for f in logs.findings(cls, "garbage"))


def test_unreadable_sources_are_errors_not_exceptions(tmp_path: Path) -> None:
    assert logread.tail_file(tmp_path / "missing.log").error == "no such file"
    assert logread.tail_file(tmp_path).error == "is a directory, not a file"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    got = logread.tail_file(fifo, 10)  # no writer: must not block
    assert time.monotonic() - started < 1 and got.ok and got.lines == []


def test_streams_are_bounded_in_bytes_and_line_length() -> None:
    stream = io.BytesIO(b"x" * 100_000 + b"\nshort\n" + b"y" * 50)
    got = logread.tail_stream(stream, 10, "stdin", "stdin")
    assert got.lines[0].startswith("xxx") and len(got.lines[0]) == logread.MAX_LINE_CHARS + 1
    assert got.lines[1:] == ["short", "y" * 50] and got.long_lines == 1
    endless = io.BytesIO(b"a line\n" * 200_000)
    cut = logread.tail_stream(endless, 5, "stdin", "stdin", max_bytes=64 * 1024)
    assert cut.stopped == f"stopped after {64 * 1024} bytes" and cut.complete is False
    assert cut.lines == ["a line"] * 5 and cut.bytes_read == 64 * 1024
    text = logread.tail_text_stream(io.StringIO("one\ntwo\nthree\n"), 2)
    assert text.lines == ["two", "three"] and text.kind == "stdin"


# ---------------------------------------------------------------------------------------------
# choosing the source; the logs command


def fake_runner(stdout: bytes, code: int = 0, error: str | None = None,
                calls: list[list[str]] | None = None) -> logread.Runner:
    def run(argv: Sequence[str], timeout: float, env: Mapping[str, str]) -> logread.CommandResult:
        if calls is not None:
            calls.append(list(argv))
        return logread.CommandResult(code, stdout, b"", error)
    return run


def fake_journalctl(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "journalctl"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return {"PATH": str(bin_dir)}


def test_journal_first_then_files(tmp_path: Path) -> None:
    env = fake_journalctl(tmp_path)
    calls: list[list[str]] = []
    journal = "\n".join(lines_of("healthy-journal.log")).encode()
    got = logread.read_log(None, 50, env, tmp_path, runner=fake_runner(journal, calls=calls))
    assert got is not None and got.kind == "journal"
    assert got.source == "journalctl -u ollama -n 50 --no-pager"
    assert calls == [[str(tmp_path / "bin" / "journalctl"), "-u", "ollama", "-n", "50",
                      "--no-pager"]]
    assert len(got.lines) == len(lines_of("healthy-journal.log"))
    # an empty journal falls through to the files, newest /var/log/ollama/*.log first
    var = tmp_path / "var" / "log" / "ollama"
    var.mkdir(parents=True)
    (var / "old.log").write_text("old\n")
    (var / "new.log").write_text("new\n")
    os.utime(var / "old.log", (1, 1))
    got = logread.read_log(None, 50, {**env, "HOME": "/home/u"}, tmp_path,
                        runner=fake_runner(b"-- No entries --\n"))
    assert got is not None and got.ok and got.source == "/var/log/ollama/new.log"
    assert got.tried == [{"source": "journalctl -u ollama -n 50 --no-pager",
                          "result": "no entries"},
                         {"source": "/home/u/.ollama/logs/server.log",
                          "result": "no such file"}]
    home = tmp_path / "home" / "u" / ".ollama" / "logs"
    home.mkdir(parents=True)
    (home / "server.log").write_text("mine\n")
    got = logread.read_log(None, 50, {**env, "HOME": "/home/u"}, tmp_path,
                        runner=fake_runner(b"", error="journalctl did not finish within 5 s"))
    assert got is not None and got.lines == ["mine"]
    assert got.tried[0]["result"] == "journalctl did not finish within 5 s"


def test_logs_command_exit_codes_and_text(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text("\n".join(lines_of("healthy.log") + lines_of("sig-oom.log")[:2]) + "\n")
    code, out = logs.run_logs_command(str(path), 2000, False, io.StringIO(), {}, tmp_path)
    assert code == 1
    # (the header wraps at the width like all prose: where depends on the temporary path)
    assert " ".join(out.split()).startswith(f"Log: {path} (29 lines read, ")
    assert "Server: listening on 127.0.0.1:11434 (version 0.33.0), line 5\n" in out
    # check's diagnosis and verdict: the cause ranked with its catalogue fix, then the verdict
    assert " 1. out-of-memory — The model does not fit in memory (error · medium confidence · "\
           "HTTP 500)\n" in out
    assert "        env: OLLAMA_CONTEXT_LENGTH=4096\n" in out
    assert out.endswith("FAILING — out-of-memory: The model does not fit in memory. (exit 1)\n")
    assert "cudaMalloc failed: out of memory" in out
    code, out = logs.run_logs_command(str(DATA / "healthy.log"), 2000, False, io.StringIO(),
                                      {}, tmp_path)
    assert code == 0 and out.endswith(
        "HEALTHY — No known failure signature in these lines. (exit 0)\n")
    code, out = logs.run_logs_command(str(tmp_path / "nope.log"), 10, False, io.StringIO(), {},
                                      tmp_path)
    assert (code, out) == (2, f"cannot read {str(tmp_path / 'nope.log')!r}: no such file")
    code, out = logs.run_logs_command(None, 10, False, io.StringIO(), {"HOME": "/h"}, tmp_path)
    assert code == 2
    assert out == ("no Ollama server log found (tried /h/.ollama/logs/server.log: no such "
                   "file); give --log-file PATH, or - to read stdin")
    assert logs.run_logs_command(None, 0, False, io.StringIO(), {}, tmp_path)[0] == 2


def test_logs_command_reads_stdin_as_json(tmp_path: Path) -> None:
    stdin = io.StringIO("\n".join(lines_of("sig-prompt-truncated.log")) + "\n")
    code, out = logs.run_logs_command("-", 2000, True, stdin, {}, tmp_path)
    doc = json.loads(out)
    assert code == 0
    assert doc["log"] == {"source": "stdin", "kind": "stdin", "lines_read": 1,
                          "bytes_read": len(stdin.getvalue()), "complete": True,
                          "line_numbers": "source"}
    assert doc["lines"] == [{"line": 1, "text": lines_of("sig-prompt-truncated.log")[0],
                             "signatures": ["prompt-truncated"],
                             "labels": ["prompt truncated to the context length"]}]
    assert [(c["cause"], c["severity"]) for c in doc["causes"]] == [("prompt-truncated",
                                                                      "warning")]


# ---------------------------------------------------------------------------------------------
# what the emulator writes


def chat(url: str, timeout: float) -> int | None:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}],
            "stream": False}
    try:
        return httpx.post(url + "/api/chat", json=body, timeout=timeout).status_code
    except httpx.TimeoutException:
        return None


def emulator_log(emulator: Callable[..., Any], tmp_path: Path, faults: dict[str, str],
                 timeout: float = 5) -> list[str]:
    path = tmp_path / "emulator.log"
    emu = emulator(log_file=str(path), **faults)
    chat(emu.url, timeout)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if "[GIN]" in text:
            break
        time.sleep(0.02)
    emu.stop()
    return path.read_text().splitlines()


@pytest.mark.parametrize(("faults", "expected"), [
    ({}, []),
    ({"oom": "new"}, [("out-of-memory", "error"), ("server-error", "info")]),
    ({"oom": "old"}, [("out-of-memory", "error"), ("server-error", "info")]),
    ({"oom": "killed"}, [("out-of-memory", "error"), ("runner-crashed", "error"),
                         ("server-error", "info")]),
    ({"runner_crash": "new"}, [("runner-crashed", "error"), ("server-error", "info")]),
    ({"runner_crash": "old"}, [("runner-crashed", "error"), ("server-error", "info")]),
    ({"offload": "40"}, [("gpu-offload", "warning")]),
])
def test_classifier_on_emulator_logs(emulator: Callable[..., Any], tmp_path: Path,
                                     faults: dict[str, str],
                                     expected: list[tuple[str, str]]) -> None:
    lines = emulator_log(emulator, tmp_path, faults)
    assert any(line.startswith("[GIN]") for line in lines)
    assert causes(logs.findings(logs.classify(lines), "emulator.log")) == expected


def test_cold_load_with_a_client_disconnect_is_a_slow_model_load(
        emulator: Callable[..., Any], tmp_path: Path) -> None:
    lines = emulator_log(emulator, tmp_path, {"cold_load": "2"}, timeout=0.3)
    cls = logs.classify(lines)
    assert {"load-aborted", "http-499"} <= set(cls.hits)
    found = logs.findings(cls, "emulator.log")
    assert causes(found) == [("slow-model-load", "error")]
    assert found[0].evidence["count"] == 2


def test_redact_line_is_linear_on_hostile_lines() -> None:
    """A 30 KB word of KEYs took 10 s with a pattern that searched for KEY inside the word."""
    import time

    from ollama_doctor.logs import redact_line

    def cost(n: int) -> float:
        line = "A" + "KEY" * n + "=v " + "X_TOKEN:t " * n
        started = time.perf_counter()
        out = redact_line(line)
        assert "=***" in out and ":t" not in out
        return time.perf_counter() - started

    small, large = min(cost(300) for _ in range(3)), min(cost(30_000) for _ in range(3))
    assert large < 100 * 40 * max(small, 1e-4)  # 100× the input: linear, with slack for noise


def test_redact_line_masks_go_map_values() -> None:
    from ollama_doctor.logs import redact_line

    line = 'env="map[OLLAMA_API_KEY:abc123 OLLAMA_HOST:0.0.0.0 HTTPS_PROXY:http://u:pw@p:3128]"'
    assert redact_line(line) == ('env="map[OLLAMA_API_KEY:*** OLLAMA_HOST:0.0.0.0 '
                                 'HTTPS_PROXY:http://u:***@p:3128]"')


# ---------------------------------------------------------------------------------------------
# as good as check: file line numbers, the headline around the match, the catalogue's fixes


OOM = ("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4608.00 MiB on device 0: "
       "cudaMalloc failed: out of memory")


@pytest.mark.parametrize("tail", [2, 50])
def test_lines_are_numbered_as_in_the_file(tmp_path: Path, tail: int) -> None:
    """Blank lines count, and a tail read (2 of 12 lines) still numbers from the file's start."""
    path = tmp_path / "server.log"
    path.write_text("\n".join(["time=x level=INFO msg=ok", "", ""] * 3 + ["", OOM, "last"]) + "\n")
    log = logread.tail_file(path, tail)
    assert log.numbers is not None and log.numbers[-2:] == [11, 12]
    doc = logs.logs_document(log, cls := logs.classify(log.lines, (), log.numbers),
                             logs.findings(cls, str(path)))
    assert doc["lines"] == [{"line": 11, "text": OOM, "signatures": ["oom"],
                             "labels": ["out of memory"]}]
    assert doc["log"]["line_numbers"] == "source"


def test_a_file_too_large_to_count_numbers_its_tail(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logread, "MAX_COUNT_BYTES", 10)
    path = tmp_path / "server.log"
    path.write_text("older line\n" * 5000 + OOM + "\n")  # more than one line's read budget
    log = logread.tail_file(path, 1)
    assert (log.numbers, log.complete, log.to_dict()["line_numbers"]) == (None, False,
                                                                         "lines read")
    assert logs.classify(log.lines, (), log.numbers).hits["oom"].last.line == 1


def test_stdin_lines_keep_their_numbers() -> None:
    stdin = io.StringIO("a\n\nb\n" + OOM + "\n")
    log = logread.tail_text_stream(stdin, 1)
    assert (log.lines, log.numbers) == ([OOM], [4])


def test_headline_keeps_the_words_that_matter() -> None:
    line = "level=ERROR " + "x=" + "y" * 300 + " " + OOM
    cls = logs.classify([line])
    (finding,) = logs.findings(cls, "server.log")
    assert "cudaMalloc failed: out of memory" in finding.message
    headline = finding.message.split("the last: ", 1)[1]
    assert headline.startswith("…") and len(headline) <= 160
    assert logs.headline("short", []) == "short"


@pytest.mark.parametrize("cause", ["out-of-memory", "runner-crashed"])
def test_log_causes_carry_the_catalogues_fix(cause: str) -> None:
    from ollama_doctor.causes import CAUSES

    fixture = {"out-of-memory": "sig-oom.log", "runner-crashed": "sig-runner-terminated.log"}
    found = {f.cause: f for f in logs.findings(logs.classify(lines_of(fixture[cause])), "x")}
    assert found[cause].fix == list(CAUSES[cause].fix) and found[cause].fix


def test_gin_403_and_404_lines_become_causes(tmp_path: Path) -> None:
    lines = (lines_of("sig-http-403-preflight.log") + lines_of("sig-http-404-model.log")
             + lines_of("sig-http-404-path.log"))
    found = logs.findings(logs.classify(lines), "server.log")
    assert [(f.cause, f.severity.value) for f in found] == [
        ("origin-forbidden", "warning"), ("model-not-found", "info"),
        ("wrong-base-path", "info")]
    assert found[0].fix == list(__import__("ollama_doctor.causes").causes.CAUSES[
        "origin-forbidden"].fix)


def test_logs_on_a_terminal_is_in_colour_with_checks_verdict(tmp_path: Path) -> None:
    """The command in a real terminal (a pty): the same coloured verdict line as check."""
    from tests.conftest import clean_environ
    from tests.support.terminal import run_in_terminal

    path = tmp_path / "server.log"
    path.write_text("\n".join(lines_of("sig-oom.log")) + "\n")
    env = clean_environ({"TERM": "xterm"})
    env.pop("NO_COLOR", None)
    code, screen = run_in_terminal(
        [sys.executable, "-m", "ollama_doctor", "logs", "--log-file", str(path)], env)
    assert code == 1
    assert "\x1b[" in screen  # styled
    plain = re.sub(r"\x1b\[[0-9;]*m", "", screen)
    assert "FAILING — out-of-memory: The model does not fit in memory. (exit 1)" in plain
