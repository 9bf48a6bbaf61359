"""The run's timeline and its live status line.

- Every check of a real run carries ``started_ms``, ``finished_ms`` and ``waited_ms``, ordered as
  ``needs``/``after`` say; local probes start with the run and their prepare steps too.
- Local probes never take a network probe's worker slot; when slots are short, the probe more
  probes wait for starts first.
- ``-v`` ends with a timeline listing every probe that ran.
- The status line is a pure function of what runs; the runner tells it through ``on_event``;
  nothing of it reaches ``--json`` or an output that is not a terminal.
"""

from __future__ import annotations

import io
import itertools
import os
import pty
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import pytest

from ollama_doctor import net, render, runner
from ollama_doctor.context import Context, Options
from ollama_doctor.registry import BY_ID, REGISTRY, ProbeSpec
from ollama_doctor.result import Outcome, ProbeResult, Status
from ollama_doctor.runner import Activity, run_probes, status_line
from ollama_doctor.target import parse_target
from tests.conftest import CliRun, clean_environ
from tests.support.terminal import run_in_terminal

LOCAL = ("container", "server", "ulimit", "resources")
NETWORK = ("reachability", "models", "auth", "warmup")


def install(name: str, run: object, prepare: object | None = None) -> None:
    module = types.ModuleType(f"ollama_doctor.probes.{name}")
    module.run = run  # type: ignore[attr-defined]
    if prepare is not None:
        module.prepare = prepare  # type: ignore[attr-defined]
    sys.modules[f"ollama_doctor.probes.{name}"] = module


def by_id(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in checks}


def assert_ordered(checks: list[dict[str, Any]]) -> None:
    """Every probe that ran started after each probe it needs or runs after had finished."""
    done = by_id(checks)
    for check in checks:
        if check["started_ms"] is None:
            assert check["finished_ms"] is None and check["waited_ms"] is None, check["id"]
            continue
        assert 0 <= check["started_ms"] <= check["finished_ms"], check["id"]
        assert check["waited_ms"] >= 0
        spec = BY_ID[check["id"]]
        for dep in (*spec.needs, *spec.after):
            if dep in done and done[dep]["finished_ms"] is not None:
                assert check["started_ms"] >= done[dep]["finished_ms"], (check["id"], dep)
        if check["prepare"] is not None:
            assert check["prepare"]["started_ms"] <= check["prepare"]["finished_ms"]


# --------------------------------------------------------------------------------------------
# the registry: the critical path


def test_local_probes_wait_for_no_local_work_and_never_delay_the_network() -> None:
    for probe in LOCAL:
        spec = BY_ID[probe]
        assert spec.local and not spec.needs, probe
        assert "server" not in spec.after, probe  # the process scan is shared, not awaited
    assert BY_ID["ulimit"].after == ()  # it reads no other probe
    assert {p for p in LOCAL if BY_ID[p].prepare} == {"container", "server", "resources"}
    for probe in NETWORK:
        spec = BY_ID[probe]
        assert not spec.local
        assert not set(spec.needs) & set(LOCAL) and not set(spec.after) & set(LOCAL), probe


# --------------------------------------------------------------------------------------------
# a real run


def test_a_real_check_has_an_ordered_timeline(cli: Callable[..., CliRun],
                                              emulator: Callable[..., Any]) -> None:
    emu = emulator()
    run = cli("check", "--host", emu.url, "-m", "llama3.2", "--json")
    assert run.code == 0, run.stdout[-2000:]
    checks = run.json()["checks"]
    assert [c["id"] for c in checks] == [s.id for s in REGISTRY if not s.opt_in]
    for check in checks:
        assert {"started_ms", "finished_ms", "waited_ms", "prepare"} <= set(check)
    assert_ordered(checks)
    done = by_id(checks)
    # local work follows reachability (or its grace), and runs while models and auth answer
    opened = min(done["reachability"]["finished_ms"], runner.LOCAL_GRACE * 1000)
    assert done["ulimit"]["started_ms"] >= opened
    for probe in ("container", "server", "resources"):
        prepared = done[probe]["prepare"]
        assert prepared is not None, probe
        assert prepared["started_ms"] >= opened, probe
        assert prepared["started_ms"] < done[probe]["started_ms"], probe
    # the local probes judged once their network facts were in, and held no slot meanwhile
    assert done["container"]["started_ms"] >= done["models"]["finished_ms"]
    assert done["server"]["started_ms"] >= done["auth"]["finished_ms"]
    assert all(done[p]["waited_ms"] == 0 for p in LOCAL)


def test_verbose_output_ends_with_a_timeline_of_every_probe_that_ran(
        cli: Callable[..., CliRun], emulator: Callable[..., Any]) -> None:
    emu = emulator()
    verbose = cli("check", "--host", emu.url, "-v")
    assert verbose.code == 0, verbose.stdout[-2000:]
    head, _, table = verbose.stdout.rpartition("\nTimeline (ms from the start of the run)\n")
    assert head, verbose.stdout[-2000:]
    lines = table.rstrip("\n").splitlines()
    assert lines[0].split() == ["probe", "start", "end", "waited", "for"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    doc = cli("check", "--host", emu.url, "--json").json()
    ran = {c["id"] for c in doc["checks"] if c["status"] != "skip"}
    assert ran <= set(rows), (ran, rows)
    assert set(rows) <= {c["id"] for c in doc["checks"]}
    assert rows["models"][3] == "reachability"
    assert "prepared" in rows["resources"]
    starts = [float(r[1]) for r in rows.values()]
    assert starts == sorted(starts)
    # not without -v
    plain = cli("check", "--host", emu.url)
    assert "Timeline" not in plain.stdout


def test_timeline_rows_from_a_document() -> None:
    checks: list[dict[str, Any]] = [
        {"id": "reachability", "started_ms": 0.4, "finished_ms": 48.0, "waited_ms": 0.0},
        {"id": "proxy", "started_ms": 0.2, "finished_ms": 12.0, "waited_ms": 0.0},
        {"id": "server", "started_ms": 60.0, "finished_ms": 61.0, "waited_ms": 0.0,
         "prepare": {"started_ms": 0.3, "finished_ms": 35.2}},
        {"id": "models", "started_ms": 48.1, "finished_ms": 59.0, "waited_ms": 12.4},
        {"id": "warmup", "started_ms": None, "finished_ms": None, "waited_ms": None},
        {"id": "auth"},  # a report from before the timeline: not listed
    ]
    assert render.timeline_rows(checks) == [
        ("proxy", "0", "12", ""),
        ("reachability", "0", "48", ""),
        ("models", "48", "59", "reachability · a free slot 12 ms"),
        ("server", "60", "61", "reachability · prepared 0–35"),
    ]
    out = io.StringIO()
    render.timeline(checks, render.console(out, width=60))
    assert out.getvalue().splitlines() == [
        "",
        "Timeline (ms from the start of the run)",
        "  probe         start    end  waited for",
        "  proxy             0     12",
        "  reachability      0     48",
        "  models           48     59  reachability · a free slot 12",
        "                              ms",
        "  server           60     61  reachability · prepared 0–35"]
    render.timeline(checks[4:], render.console(out := io.StringIO(), width=60))
    assert out.getvalue() == ""  # nothing ran: no table


# --------------------------------------------------------------------------------------------
# the runner: slots, urgency, prepare steps


@pytest.fixture
def ctx() -> Context:
    return Context(parse_target("127.0.0.1:1"), Options(debug=True))


def test_local_probes_take_no_network_slot(ctx: Context,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_WORKERS", 1)
    release = threading.Event()
    local_ran = threading.Event()

    def hold(c: Context) -> Outcome:
        local_ran.wait(10)  # ends only once the local probe ran beside it
        release.wait(0.2)
        return Outcome(Status.PASS, "held")

    install("t_net1", hold)
    install("t_net2", lambda c: Outcome(Status.PASS, "second"))
    def local(c: Context) -> Outcome:
        local_ran.set()
        return Outcome(Status.PASS, "local")

    install("t_local", local)
    registry = (ProbeSpec("t_net1", "N1", ""), ProbeSpec("t_net2", "N2", ""),
                ProbeSpec("t_local", "L", "", local=True))
    results = {r.id: r for r in run_probes(ctx, ["t_net1", "t_net2", "t_local"],
                                           registry=registry)}
    assert [r.status for r in results.values()] == [Status.PASS] * 3
    assert results["t_local"].waited_ms == 0
    assert results["t_local"].started_ms is not None
    assert results["t_net1"].finished_ms is not None
    assert results["t_local"].started_ms < results["t_net1"].finished_ms
    # the second network probe waited for the one slot, and says so
    assert results["t_net2"].started_ms is not None
    assert results["t_net2"].started_ms >= results["t_net1"].finished_ms
    assert results["t_net2"].waited_ms is not None and results["t_net2"].waited_ms > 0


def test_when_slots_are_short_the_probe_others_wait_for_starts_first(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_WORKERS", 1)
    order: list[str] = []
    def ran(name: str) -> Callable[[Context], Outcome]:
        def run(c: Context) -> Outcome:
            order.append(name)
            return Outcome(Status.PASS, name)
        return run

    for name in ("t_leaf", "t_trunk", "t_branch", "t_tip"):
        install(name, ran(name))
    registry = (ProbeSpec("t_leaf", "Leaf", ""),  # nothing waits for it
                ProbeSpec("t_trunk", "Trunk", ""),
                ProbeSpec("t_branch", "Branch", "", needs=("t_trunk",)),
                ProbeSpec("t_tip", "Tip", "", after=("t_branch",)))
    results = run_probes(ctx, ["t_leaf", "t_trunk", "t_branch", "t_tip"], registry=registry)
    # trunk before leaf (registry order would start leaf first); then equals by registry order
    assert order == ["t_trunk", "t_branch", "t_leaf", "t_tip"]
    assert [r.id for r in results] == ["t_leaf", "t_trunk", "t_branch", "t_tip"]


def test_a_prepare_step_runs_while_the_facts_it_is_judged_with_come_in(ctx: Context) -> None:
    """Local work follows the lead network probe (the one most probes wait for) and runs
    beside the rest of the network; the probe judges once its facts are in."""
    gate = threading.Event()
    seen_by_prepare: list[tuple[bool, bool]] = []

    def slow(c: Context) -> Outcome:
        gate.wait(10)  # a network probe that ends only once the local work ran
        return Outcome(Status.PASS, "slow")

    def prepare(c: Context) -> dict[str, int]:
        seen_by_prepare.append(("t_lead" in c.results, "t_slow" in c.results))
        gate.set()
        return {"files": 3}

    def judge(c: Context) -> Outcome:
        work = c.once(runner.prepare_key("t_judge"), lambda: {"files": -1})
        slow_result = c.result("t_slow")
        return Outcome(Status.PASS, f"{work['files']} files; slow: "
                                    f"{slow_result.summary if slow_result else None}")

    install("t_lead", lambda c: Outcome(Status.PASS, "lead"))
    install("t_slow", slow)
    install("t_judge", judge, prepare)
    registry = (ProbeSpec("t_lead", "Lead", ""),
                ProbeSpec("t_slow", "Slow", "", needs=("t_lead",)),
                ProbeSpec("t_judge", "Judge", "", after=("t_slow",), local=True,
                          prepare=True))
    lead, slow_result, judged = run_probes(ctx, ["t_lead", "t_slow", "t_judge"],
                                           registry=registry)
    assert seen_by_prepare == [(True, False)]
    assert judged.summary == "3 files; slow: slow"
    assert judged.prepare_ms is not None
    assert lead.finished_ms is not None and slow_result.finished_ms is not None
    assert lead.finished_ms <= judged.prepare_ms[0] < slow_result.finished_ms
    assert judged.started_ms is not None and judged.started_ms >= slow_result.finished_ms
    assert judged.to_dict()["prepare"]["started_ms"] == round(judged.prepare_ms[0], 1)


def test_local_work_waits_for_the_lead_no_longer_than_its_grace(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "LOCAL_GRACE", 0.3)
    release = threading.Event()
    local_ran = threading.Event()

    def hung(c: Context) -> Outcome:
        local_ran.wait(10)  # a server that does not answer: the local probe still runs
        release.wait(0.1)
        return Outcome(Status.PASS, "answered late")

    def local(c: Context) -> Outcome:
        local_ran.set()
        return Outcome(Status.PASS, "local")

    install("t_hung", hung)
    install("t_next", lambda c: Outcome(Status.PASS, "next"))
    install("t_local", local)
    registry = (ProbeSpec("t_hung", "Hung", ""),
                ProbeSpec("t_next", "Next", "", needs=("t_hung",)),
                ProbeSpec("t_local", "Local", "", local=True))
    hung_result, _, local_result = run_probes(ctx, ["t_hung", "t_next", "t_local"],
                                              registry=registry)
    assert local_result.started_ms is not None and hung_result.finished_ms is not None
    assert 300 <= local_result.started_ms < hung_result.finished_ms


def test_a_prepare_step_that_crashes_is_the_probes_error(ctx: Context) -> None:
    def prepare(c: Context) -> None:
        raise PermissionError("cannot read /proc/42/environ")

    def judge(c: Context) -> Outcome:
        c.once(runner.prepare_key("t_crash"), lambda: None)
        return Outcome(Status.PASS, "never")

    install("t_crash", judge, prepare)
    registry = (ProbeSpec("t_crash", "Crash", "", local=True, prepare=True),)
    (result,) = run_probes(ctx, ["t_crash"], registry=registry)
    assert result.status is Status.ERROR
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("PermissionError",
                                                         "cannot read /proc/42/environ")


def test_a_skipped_probe_has_no_times(ctx: Context) -> None:
    install("t_down", lambda c: Outcome(Status.FAIL, "down"))
    install("t_next", lambda c: Outcome(Status.PASS, "never"))
    registry = (ProbeSpec("t_down", "Down", ""),
                ProbeSpec("t_next", "Next", "", needs=("t_down",)))
    down, skipped = run_probes(ctx, ["t_down", "t_next"], registry=registry)
    assert down.started_ms is not None and down.finished_ms is not None
    assert (skipped.status, skipped.started_ms, skipped.finished_ms, skipped.waited_ms) == (
        Status.SKIP, None, None, None)
    assert skipped.to_dict()["prepare"] is None


# --------------------------------------------------------------------------------------------
# the status line


@pytest.mark.parametrize(("activities", "line"), [
    ([Activity("warmup", 12.4, "loading llama3.2", 300, "--load-timeout")],
     "warmup: loading llama3.2 — 12 s of up to 300 s (--load-timeout)"),
    ([Activity("load", 3.9, "ramp", 20, "--load-max-seconds")],
     "load: ramp — 3 s of up to 20 s (--load-max-seconds)"),
    ([Activity("models", 2.2)], "models — 2 s"),
    ([Activity("reachability", 0.2), Activity("proxy", 0.1)], "proxy · reachability"),
    ([Activity("dns", 0.3), Activity("latency", 1.5), Activity("models", 2.5),
      Activity("warmup", 0.5, "loading llama3.2", 300, "--load-timeout")],
     "warmup: loading llama3.2 — 0 s of up to 300 s (--load-timeout) · models — 2 s · "
     "latency — 1 s · dns"),
    ([], ""),
])
def test_status_line(activities: list[Activity], line: str) -> None:
    assert status_line(activities) == line


def test_the_runner_tells_a_model_load_with_its_limit() -> None:
    ctx = Context(parse_target("127.0.0.1:1"),
                  Options(timeout=0.3, load_timeout=40, model="llama3.2"))
    seen: list[str] = []

    def loading(c: Context) -> Outcome:
        with net.header_wait(40):  # a streamed model load: excused, bounded by --load-timeout
            threading.Event().wait(1.6)
        return Outcome(Status.PASS, "loaded")

    def hook(text: str, result: ProbeResult | None) -> None:
        if result is None:
            seen.append(text)

    install("t_warm", loading)
    registry = (ProbeSpec("t_warm", "Warm", ""),)
    (result,) = run_probes(ctx, ["t_warm"], registry=registry, on_event=hook, budget=1.0)
    assert result.status is Status.PASS
    assert "t_warm: loading llama3.2 — 0 s of up to 40 s (--load-timeout)" in seen
    assert "t_warm: loading llama3.2 — 1 s of up to 40 s (--load-timeout)" in seen
    assert all(a != b for a, b in itertools.pairwise(seen))  # told when it changes


# --------------------------------------------------------------------------------------------
# nothing of it where it does not belong


def test_no_status_line_unless_stdout_and_stderr_are_terminals(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    main, other = pty.openpty()
    try:
        with os.fdopen(os.dup(other), "w") as tty, os.fdopen(os.dup(other), "w") as tty_err:
            assert render.live(tty, tty_err)
            assert not render.live(io.StringIO(), tty_err)  # stdout piped: nothing on stderr
            assert not render.live(tty, io.StringIO())
            monkeypatch.setenv("NO_COLOR", "1")
            monkeypatch.setenv("TERM", "dumb")
            assert not render.live(tty, tty_err)
    finally:
        os.close(main)
        os.close(other)


def test_progress_is_silent_when_output_is_not_a_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    with render.progress("Diagnosing") as update:
        update("warmup: loading llama3.2 — 12 s of up to 300 s (--load-timeout)")
    assert capsys.readouterr() == ("", "")


def test_json_and_piped_output_carry_no_status_line(cli: Callable[..., CliRun],
                                                    emulator: Callable[..., Any]) -> None:
    emu = emulator(cold_load="1.2")
    for args in (("--json",), ()):
        run = cli("check", "--host", emu.url, "-m", "llama3.2", *args)
        assert run.code == 0, run.stdout[-2000:]
        for text in (run.stdout, run.stderr):
            assert "loading llama3.2 —" not in text and "of up to" not in text
            assert "Diagnosing" not in text and "\r" not in text


def test_a_terminal_sees_the_model_load_with_its_limit(emulator: Callable[..., Any]) -> None:
    """The whole command in a real terminal (a pty as stdin, stdout and stderr): while the
    model loads, the status line says so, with its limit."""
    emu = emulator(cold_load="2.5")
    env = clean_environ({"TERM": "xterm"})
    env.pop("NO_COLOR", None)
    _, screen = run_in_terminal(
        [sys.executable, "-m", "ollama_doctor", "check", "--host", emu.url, "-m", "llama3.2",
         "--timeout", "1"], env, columns=160)
    assert "warmup: loading llama3.2 — 1 s of up to 300 s (--load-timeout)" in screen, \
        screen[-3000:]
