"""The runner: prerequisites, crash capture, order, concurrency."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest

from ollama_doctor.context import Context, Options
from ollama_doctor.registry import ProbeSpec
from ollama_doctor.result import Outcome, Status
from ollama_doctor.runner import run_probes
from ollama_doctor.target import parse_target


def install(name: str, run: object) -> None:
    module = types.ModuleType(f"ollama_doctor.probes.{name}")
    module.run = run  # type: ignore[attr-defined]
    sys.modules[f"ollama_doctor.probes.{name}"] = module


@pytest.fixture
def ctx() -> Context:
    return Context(parse_target("127.0.0.1:1"), Options(debug=True))


def test_crash_becomes_error_and_run_goes_on(ctx: Context) -> None:
    def boom(ctx: Context) -> Outcome:
        raise RuntimeError("kaput\nsecond line")

    install("t_boom", boom)
    install("t_fine", lambda ctx: Outcome(Status.PASS, "fine"))
    registry = (ProbeSpec("t_boom", "Boom", ""), ProbeSpec("t_fine", "Fine", ""))
    results = run_probes(ctx, ["t_boom", "t_fine"], registry=registry)
    assert [(r.id, r.status) for r in results] == [("t_boom", Status.ERROR),
                                                    ("t_fine", Status.PASS)]
    assert results[0].error is not None
    assert (results[0].error.type, results[0].error.message) == ("RuntimeError", "kaput")
    assert "Traceback" in (results[0].error.traceback or "")
    assert results[0].summary == "probe crashed: RuntimeError: kaput"


def test_failed_prerequisite_skips_with_blocked_by(ctx: Context) -> None:
    install("t_base", lambda ctx: Outcome(Status.FAIL, "down"))
    calls: list[str] = []
    install("t_child", lambda ctx: calls.append("ran") or Outcome(Status.PASS, "x"))
    registry = (ProbeSpec("t_base", "Base", ""),
                ProbeSpec("t_child", "Child", "", needs=("t_base",)))
    results = run_probes(ctx, ["t_base", "t_child"], registry=registry)
    assert results[1].status is Status.SKIP
    assert results[1].blocked_by == "t_base"
    assert calls == []


def test_after_waits_but_does_not_block(ctx: Context) -> None:
    seen: list[str | None] = []
    install("t_first", lambda ctx: Outcome(Status.FAIL, "bad"))

    def second(c: Context) -> Outcome:
        first = c.result("t_first")
        seen.append(first.summary if first else None)
        return Outcome(Status.PASS, "ok")

    install("t_second", second)
    registry = (ProbeSpec("t_second", "Second", "", after=("t_first",)),
                ProbeSpec("t_first", "First", ""))
    results = run_probes(ctx, ["t_first", "t_second"], registry=registry)
    assert seen == ["bad"]
    assert [r.id for r in results] == ["t_second", "t_first"]  # registry order
    assert results[0].status is Status.PASS


def test_independent_probes_overlap(ctx: Context) -> None:
    barrier = threading.Barrier(2, timeout=5)

    def meet(c: Context) -> Outcome:
        barrier.wait()  # would time out if the two ran one after the other
        return Outcome(Status.PASS, "met")

    install("t_a", meet)
    install("t_b", meet)
    registry = (ProbeSpec("t_a", "A", ""), ProbeSpec("t_b", "B", ""))
    started = time.perf_counter()
    results = run_probes(ctx, ["t_a", "t_b"], registry=registry)
    assert [r.status for r in results] == [Status.PASS, Status.PASS]
    assert time.perf_counter() - started < 5


def test_prerequisites_are_marked(ctx: Context) -> None:
    install("t_dep", lambda ctx: Outcome(Status.PASS, "dep"))
    install("t_main", lambda ctx: Outcome(Status.PASS, "main"))
    registry = (ProbeSpec("t_dep", "Dep", ""), ProbeSpec("t_main", "Main", "", needs=("t_dep",)))
    results = run_probes(ctx, ["t_main"], prerequisites=["t_dep"], registry=registry)
    assert [(r.id, r.prerequisite) for r in results] == [("t_dep", True), ("t_main", False)]


def test_operations_past_the_deadline_keep_a_bounded_floor() -> None:
    now = [100.0]
    ctx = Context(parse_target("127.0.0.1:1"), Options(timeout=5), clock=lambda: now[0])
    ctx.deadline = 110.0
    assert ctx.op_timeout() == 5
    now[0] = 107.5
    assert ctx.op_timeout() == 2.5
    now[0] = 120.0
    assert ctx.op_timeout() == 1.0  # the floor
    short = Context(parse_target("127.0.0.1:1"), Options(timeout=0.3), clock=lambda: 999.0)
    short.deadline = 0.0
    assert short.op_timeout() == 0.3  # never more than --timeout


def test_a_skip_later_in_the_order_unblocks_an_earlier_probe(ctx: Context) -> None:
    """``after`` a probe that comes later and is skipped in the same pass: not a cycle."""
    install("t_root", lambda ctx: Outcome(Status.FAIL, "down"))
    install("t_early", lambda ctx: Outcome(Status.PASS, "ran"))
    install("t_late", lambda ctx: Outcome(Status.PASS, "never"))
    registry = (ProbeSpec("t_root", "Root", ""),
                ProbeSpec("t_early", "Early", "", after=("t_root", "t_late")),
                ProbeSpec("t_late", "Late", "", needs=("t_root",)))
    results = run_probes(ctx, ["t_root", "t_early", "t_late"], registry=registry)
    assert [(r.id, r.status, r.blocked_by) for r in results] == [
        ("t_root", Status.FAIL, None), ("t_early", Status.PASS, None),
        ("t_late", Status.SKIP, "t_root")]


def test_a_probe_past_the_run_budget_is_cut_and_keeps_what_it_had(ctx: Context) -> None:
    from ollama_doctor.result import Finding, Severity
    from ollama_doctor.runner import partial_key

    release = threading.Event()

    def stuck(c: Context) -> Outcome:
        c.memo[partial_key("t_stuck")] = Outcome(
            Status.FAIL, "GET / unanswered", facts={"root": "no answer"},
            findings=[Finding("server-unresponsive", Severity.ERROR, "no answer")])
        release.wait(30)  # a read that never returns
        return Outcome(Status.PASS, "never seen")

    install("t_stuck", stuck)
    install("t_quick", lambda ctx: Outcome(Status.PASS, "quick"))
    install("t_after", lambda ctx: Outcome(Status.PASS, "after"))
    registry = (ProbeSpec("t_stuck", "Stuck", ""), ProbeSpec("t_quick", "Quick", ""),
                ProbeSpec("t_after", "After", "", needs=("t_stuck",)))
    started = time.perf_counter()
    try:
        results = run_probes(ctx, ["t_stuck", "t_quick", "t_after"], registry=registry,
                             budget=0.5)
    finally:
        release.set()
    assert time.perf_counter() - started < 10  # not 30: the stuck thread is not waited for
    stuck_result, quick, after = results
    assert stuck_result.status is Status.ERROR
    assert stuck_result.summary.startswith("timed out after ")
    assert stuck_result.summary.endswith(" s; GET / unanswered")
    assert stuck_result.error is not None and stuck_result.error.type == "Timeout"
    assert stuck_result.facts == {"root": "no answer"}
    assert [f.cause for f in stuck_result.findings] == ["server-unresponsive"]
    assert (quick.status, after.status, after.blocked_by) == (Status.PASS, Status.SKIP,
                                                               "t_stuck")


def test_probes_not_started_when_the_budget_is_spent_are_skipped(ctx: Context) -> None:
    release = threading.Event()
    install("t_slow", lambda ctx: release.wait(30) and Outcome(Status.PASS, "x"))
    install("t_later", lambda ctx: Outcome(Status.PASS, "later"))
    registry = (ProbeSpec("t_slow", "Slow", ""),
                ProbeSpec("t_later", "Later", "", after=("t_slow",)))
    try:
        results = run_probes(ctx, ["t_slow", "t_later"], registry=registry, budget=0.3)
    finally:
        release.set()
    assert results[0].status is Status.ERROR
    assert (results[1].status, results[1].summary) == (Status.SKIP,
                                                       "not run: the run's 0.3 s were spent")


def test_a_long_header_wait_extends_the_budget(emulator: object) -> None:
    """A model load waits --load-timeout for its headers: that wait is excused."""
    from ollama_doctor import net

    emu = emulator(cold_load="1.5")  # type: ignore[operator]
    ctx = Context(parse_target(emu.url), Options(timeout=0.5, load_timeout=20))

    def load(c: Context) -> Outcome:
        reply = net.request("POST", emu.url + "/api/generate", timeout=20,
                            json_body={"model": "llama3.2", "prompt": "", "stream": False})
        return Outcome(Status.PASS if reply.ok else Status.FAIL, reply.describe())

    install("t_load", load)
    registry = (ProbeSpec("t_load", "Load", ""),)
    results = run_probes(ctx, ["t_load"], registry=registry, budget=0.8)
    assert (results[0].status, results[0].summary) == (Status.PASS, "HTTP 200")
    assert results[0].duration_ms > 800  # it did run past the budget


def test_a_marked_header_wait_is_excused_and_an_unmarked_one_is_not() -> None:
    from ollama_doctor import net

    ctx = Context(parse_target("127.0.0.1:1"), Options(timeout=0.2, load_timeout=20))

    def marked(c: Context) -> Outcome:
        with net.header_wait(20):  # a streamed model load: allowed --load-timeout
            time.sleep(1.0)
        return Outcome(Status.PASS, "loaded")

    def unmarked(c: Context) -> Outcome:
        time.sleep(1.0)
        return Outcome(Status.PASS, "never seen")

    install("t_marked", marked)
    install("t_unmarked", unmarked)
    registry = (ProbeSpec("t_marked", "Marked", ""), ProbeSpec("t_unmarked", "Unmarked", ""))
    results = run_probes(ctx, ["t_marked", "t_unmarked"], registry=registry, budget=0.4)
    assert [(r.status, r.summary[:9]) for r in results] == [(Status.PASS, "loaded"),
                                                             (Status.ERROR, "timed out")]


def test_reachability_cut_while_get_is_unanswered_still_says_server_unresponsive(
        emulator: object) -> None:
    """A probe cut at its budget keeps what it had established: an unanswered request is
    still ``server-unresponsive``, and the diagnosis can name it."""
    emu = emulator(hang="")  # type: ignore[operator]
    ctx = Context(parse_target(emu.url), Options(timeout=30))
    (result,) = run_probes(ctx, ["reachability"], budget=2.0)
    assert result.status is Status.ERROR
    assert result.error is not None and result.error.type == "Timeout"
    head, _, rest = result.summary.partition("; ")
    assert head.startswith("timed out after ")
    assert rest == f"GET / to {emu.url} had no answer"
    assert [(f.cause, f.severity.value) for f in result.findings] == [("server-unresponsive",
                                                                       "critical")]
    assert result.facts["addresses"] == ["127.0.0.1"]
    assert result.facts["connects"][0]["ok"] is True


PLANTED = "sk-PLANTEDtracebackkey0123456789"
HOSTILE = (f"upstream said Authorization: Bearer {PLANTED} \x1b]0;pwned\x07\x1b[2Jdone\x9b31m"
           "\r\nsecond line")


def test_a_crash_under_debug_records_no_secret_and_no_escape(ctx: Context) -> None:
    def hostile(c: Context) -> Outcome:
        raise RuntimeError(HOSTILE)

    install("t_hostile", hostile)
    registry = (ProbeSpec("t_hostile", "Hostile", ""),)
    (result,) = run_probes(ctx, ["t_hostile"], registry=registry)
    assert result.error is not None and result.error.traceback is not None
    assert result.error.message == "upstream said Authorization: Bearer *** done"
    assert result.summary == f"probe crashed: RuntimeError: {result.error.message}"
    trace = result.error.traceback
    assert trace.startswith("Traceback (most recent call last):\n")
    assert trace.endswith("\nRuntimeError: upstream said Authorization: Bearer *** done\n"
                          "second line\n")  # lines kept, a stray \r dropped
    for text in (trace, result.summary, result.error.message):
        assert PLANTED not in text and "pwned" not in text
        assert not any(ch in text for ch in "\x1b\x07\x9b\r")


def test_classify_keeps_its_table() -> None:
    """The order ``net.classify`` reads an exception in: TLS and resolver errors anywhere in
    the chain, httpx's classes, a missing SOCKS extra, errno and timeouts, then words."""
    import errno
    import socket
    import ssl

    import httpx

    from ollama_doctor import net

    def chained(outer: BaseException, inner: BaseException) -> BaseException:
        outer.__cause__ = inner
        return outer

    table: list[tuple[BaseException, str]] = [
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls-verify"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "tls-plain"),
        (chained(httpx.ConnectError("x"), ssl.SSLError(1, "[SSL: RECORD_LAYER_FAILURE]")),
         "tls-plain"),
        (chained(httpx.ConnectError("[Errno -2] Name or service not known"),
                 socket.gaierror(-2, "Name or service not known")), "dns"),
        (ImportError("Using SOCKS proxy, but the 'socksio' package is not installed"),
         "proxy-unsupported"),
        (ValueError("Unknown scheme for proxy URL"), "proxy-unsupported"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
        (chained(httpx.ConnectError("[Errno 111] Connection refused"),
                 ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")), "refused"),
        (TimeoutError("timed out"), "read-timeout"),
        (chained(httpx.ConnectError("timed out"), TimeoutError("timed out")), "connect-timeout"),
        (RuntimeError("no route to host"), "unreachable"),
        (httpx.ConnectError("All connection attempts failed"), "other"),
        (RuntimeError(""), "other"),
    ]
    for exc, kind in table:
        error = net.classify(exc)
        assert (error.kind, error.exception) == (kind, type(exc).__name__), exc
    assert net.classify(RuntimeError("")).message == "RuntimeError"
