"""`watch`: changes only, confirmation, state across restarts, hooks and webhooks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor import watch as watcher
from ollama_doctor.context import Options
from ollama_doctor.target import parse_target
from tests.conftest import clean_environ, closed_port, free_port
from tests.support.canned import CannedServer, Reply, Request

# ---------------------------------------------------------------------------------------------
# The change tracker (pure)


def seen(*causes: str) -> dict[str, dict[str, Any]]:
    return {c: {"severity": "error", "code": None, "title": c, "message": c,
                "persistence": None} for c in causes}


def test_confirm_before_announcing_and_a_blip_is_silent() -> None:
    tracker = watcher.Tracker("http://t", confirm=2)
    assert tracker.update(seen("a"), 100.0) == []
    assert tracker.update(seen(), 160.0) == []  # one round only: a blip
    assert tracker.update(seen("a"), 220.0) == []
    (change,) = tracker.update(seen("a"), 280.0)
    assert (change["event"], change["cause"]) == ("appeared", "a")
    assert change["since"] == watcher.iso(220.0)
    assert tracker.update(seen("a"), 340.0) == []  # still there: nothing new
    (change,) = tracker.update(seen(), 400.0)
    assert (change["event"], change["cause"], change["duration_s"]) == ("resolved", "a", 180.0)


def test_state_round_trip(tmp_path: Path) -> None:
    tracker = watcher.Tracker("http://t", confirm=1)
    tracker.round = 7
    tracker.update(seen("a"), 10.0)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(tracker.to_dict()))
    again = watcher.Tracker.load(path, "http://t", 1, lambda m: None)
    assert again.round == 7 and set(again.active) == {"a"}
    warnings: list[str] = []
    other = watcher.Tracker.load(path, "http://other", 1, warnings.append)
    assert other.active == {} and "belongs to 'http://t'" in warnings[0]
    path.write_text("{not json")
    broken = watcher.Tracker.load(path, "http://t", 1, warnings.append)
    assert broken.active == {} and "unreadable state file" in warnings[1]


def test_human_durations() -> None:
    assert watcher.human(0) == "0s"
    assert watcher.human(192) == "3m 12s"
    assert watcher.human(3 * 86400 + 7200 + 5) == "3d 2h"


def test_default_state_path_follows_xdg(tmp_path: Path) -> None:
    path = watcher.default_state_path("http://127.0.0.1:11434", {"XDG_STATE_HOME": "/x"})
    assert str(path).startswith("/x/ollama-doctor/watch/127.0.0.1_11434-")
    home = watcher.default_state_path("http://h:1", {"HOME": str(tmp_path)})
    assert str(home).startswith(str(tmp_path / ".local" / "state" / "ollama-doctor"))


# ---------------------------------------------------------------------------------------------
# Retries within a round: intermittent vs persistent (scripted checks, real loop)


def doc(*causes: str) -> dict[str, Any]:
    return {"summary": {"exit_code": 1 if causes else 0},
            "diagnosis": [{"cause": c, "severity": "error", "code": 503, "title": c,
                           "explanation": f"{c} seen"} for c in causes], "checks": []}


def run_scripted(tmp_path: Path, script: list[dict[str, Any]], **config: Any
                 ) -> tuple[str, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def check(target: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return script.pop(0)

    import io

    out, err = io.StringIO(), io.StringIO()
    cfg = watcher.WatchConfig(target=parse_target("http://127.0.0.1:9"), options=Options(),
                              env={}, interval=0.01, state=str(tmp_path / "s.json"),
                              **config)
    watcher.watch(cfg, out=out, err=err, check=check)
    return out.getvalue(), calls


def test_a_failure_cleared_by_a_retry_is_intermittent(tmp_path: Path) -> None:
    text, calls = run_scripted(tmp_path, [doc("server-busy"), doc()], count=1, confirm=1)
    assert len(calls) == 2
    assert "appeared  server-busy (error, intermittent, HTTP 503)" in text


def test_a_failure_in_every_try_is_persistent(tmp_path: Path) -> None:
    text, calls = run_scripted(tmp_path, [doc("server-busy")] * 4, count=1, confirm=1)
    assert len(calls) == 1 + watcher.RETRIES
    assert "appeared  server-busy (error, persistent, HTTP 503)" in text


def test_a_crashing_round_is_one_line_and_the_watch_goes_on(tmp_path: Path) -> None:
    import io

    script: list[Any] = [RuntimeError("boom"), doc("server-busy")]

    def check(target: Any, **kwargs: Any) -> dict[str, Any]:
        item = script.pop(0)
        if isinstance(item, Exception):
            raise item
        return dict(item)

    out, err = io.StringIO(), io.StringIO()
    cfg = watcher.WatchConfig(target=parse_target("http://127.0.0.1:9"), options=Options(),
                              env={}, interval=0.01, state=str(tmp_path / "s.json"),
                              count=2, confirm=1)
    script += [doc("server-busy")] * 3
    watcher.watch(cfg, out=out, err=err, check=check)
    assert "round 1 crashed: RuntimeError: boom" in err.getvalue()
    assert "appeared  server-busy" in out.getvalue()


def test_warmup_every_n_rounds_and_load_only_when_asked(tmp_path: Path) -> None:
    cfg = watcher.WatchConfig(target=parse_target("http://127.0.0.1:9"),
                              options=Options(model="m"), env={}, warmup_every=3)
    rounds = [watcher.probes_for_round(n, cfg) for n in range(1, 8)]
    assert ["warmup" in r for r in rounds] == [True, False, False, True, False, False, True]
    assert not any("load" in r for r in rounds)
    cfg.options = Options(model=None, load=True)
    assert "warmup" not in watcher.probes_for_round(1, cfg)
    assert "load" in watcher.probes_for_round(1, cfg)


# ---------------------------------------------------------------------------------------------
# The real command against the emulator


class Receiver:
    """A webhook receiver on 127.0.0.1:0 that fails the first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.fail_first = fail_first
        self.server = CannedServer(self._answer, name="webhook")
        self.url = self.server.start() + "/hook"

    def _answer(self, request: Request) -> Reply:
        status = 500 if len(self.statuses) < self.fail_first else 200
        self.statuses.append(status)
        if status == 200:
            self.bodies.append(json.loads(request.body))
        return Reply(status, b"", None)

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def receiver() -> Iterator[Callable[[int], Receiver]]:
    made: list[Receiver] = []

    def make(fail_first: int = 0) -> Receiver:
        made.append(Receiver(fail_first))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_healthy_server_prints_nothing(tmp_path: Path, emulator: Any, cli: Any) -> None:
    server = emulator()
    jsonl = tmp_path / "rounds.jsonl"
    run = cli("watch", "--host", server.url, "--interval", "0.05", "--count", "3",
              "--state", str(tmp_path / "s.json"), "--jsonl", str(jsonl))
    assert run.code == 0, run.stderr
    assert run.stdout == ""
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 2, 3]
    assert all(r["changes"] == [] and r["summary"]["status"] == "healthy" for r in records)
    assert records[0]["schema_version"] == 1 and records[0]["command"] == "watch"
    assert "warmup" not in {c["id"] for c in records[0]["checks"]}  # no -m: no warm-up
    assert server.loaded == {}


def test_outage_confirmed_then_resolved_across_restarts(tmp_path: Path, cli: Any,
                                                       receiver: Any) -> None:
    """Nothing listens: announced after 2 rounds, once, with hook and webhook; a restart
    after the server came up says it is resolved and how long it lasted."""
    from ollama_doctor.emulator import Emulator, EmulatorConfig

    port = free_port()
    state, hook_log = tmp_path / "state.json", tmp_path / "hook.log"
    sink = receiver(fail_first=1)  # the first POST fails: the webhook must retry
    hook = (f"{{ cat; echo; echo \"$OLLAMA_DOCTOR_EVENT $OLLAMA_DOCTOR_CAUSE "
            f"$OLLAMA_DOCTOR_SEVERITY $OLLAMA_DOCTOR_TARGET\"; }} >> {hook_log}")
    common = ["--host", f"http://127.0.0.1:{port}", "--interval", "0.05",
              "--state", str(state), "--on-change", hook, "--webhook", sink.url]

    run = cli("watch", *common, "--count", "3")
    assert run.code == 1
    appeared = [line for line in run.stdout.splitlines() if "server-not-running" in line]
    assert len(appeared) == 1 and "  appeared  server-not-running (critical" in appeared[0]
    saved = json.loads(state.read_text())
    assert saved["round"] == 3 and "server-not-running" in saved["active"]
    hook_lines = hook_log.read_text().splitlines()
    change = json.loads(hook_lines[0])
    assert change["event"] == "appeared" and change["cause"] == "server-not-running"
    assert f"appeared server-not-running critical http://127.0.0.1:{port}" in hook_lines
    assert sink.statuses[:2] == [500, 200]
    assert any(b["cause"] == "server-not-running" and b["event"] == "appeared"
               for b in sink.bodies)

    with Emulator(EmulatorConfig(port=port)):
        again = cli("watch", *common, "--count", "1")
    assert again.code == 0, again.stderr
    assert "resuming at round 4" in again.stderr
    resolved = [line for line in again.stdout.splitlines() if "server-not-running" in line]
    assert len(resolved) == 1 and "  resolved  server-not-running after " in resolved[0]
    assert json.loads(state.read_text())["active"] == {}
    assert any(b["event"] == "resolved" and b["cause"] == "server-not-running"
               and b["duration_s"] > 0 for b in sink.bodies)


def test_json_changes_on_stdout(tmp_path: Path, cli: Any) -> None:
    run = cli("watch", "--host", f"http://127.0.0.1:{closed_port()}", "--interval", "0.05",
              "--count", "1", "--confirm", "1", "--json", "--state", str(tmp_path / "s"))
    changes = [json.loads(line) for line in run.stdout.splitlines()]
    assert {c["cause"] for c in changes} >= {"server-not-running"}
    assert all(c["event"] == "appeared" and c["round"] == 1 for c in changes)


def test_slow_hook_does_not_hold_up_rounds(tmp_path: Path, cli: Any) -> None:
    """The hook sleeps 3 s per change; the rounds still run at their interval."""
    jsonl = tmp_path / "r.jsonl"
    started = time.monotonic()
    run = cli("watch", "--host", f"http://127.0.0.1:{closed_port()}", "--interval", "0.05",
              "--count", "3", "--confirm", "1", "--state", str(tmp_path / "s"),
              "--jsonl", str(jsonl), "--on-change", f"sleep 3; echo done >> {tmp_path}/h")
    assert run.code == 1
    lines = jsonl.read_text().splitlines()
    stamps = [json.loads(line)["generated_at"] for line in lines]
    assert len(stamps) == 3
    assert (tmp_path / "h").read_text().count("done") >= 1  # drained before exit
    assert time.monotonic() - started < 60


def test_sigterm_ends_the_watch_and_keeps_state(tmp_path: Path) -> None:
    import signal

    state = tmp_path / "s.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "watch", "--host",
         f"http://127.0.0.1:{closed_port()}", "--interval", "0.1", "--confirm", "1",
         "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_environ())
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err  # the last round's code: nothing listens
    assert "Traceback" not in err
    assert "appeared  server-not-running" in out
    assert "server-not-running" in json.loads(state.read_text())["active"]


@pytest.mark.parametrize(("args", "message"), [
    (["--interval", "0"], "--interval must be a positive"),
    (["--count", "0"], "--count must be at least 1"),
    (["--confirm", "0"], "--confirm must be at least 1"),
    (["--state", "/nonexistent/dir/state.json"], "does not exist"),
    (["--webhook", "ftp://x"], "--webhook must be an http:// or https:// URL"),
])
def test_bad_options_are_one_line(args: list[str], message: str, cli: Any) -> None:
    run = cli("watch", "--host", "http://127.0.0.1:1", *args)
    assert run.code == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_default_state_under_xdg_state_home(tmp_path: Path, cli: Any) -> None:
    run = cli("watch", "--host", "http://127.0.0.1:1", "--interval", "0.05", "--count", "1",
              env={"XDG_STATE_HOME": str(tmp_path)})
    assert run.code == 1
    files = list((tmp_path / "ollama-doctor" / "watch").glob("*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text())["target"] == "http://127.0.0.1:1"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_memory_stays_flat_over_thousands_of_rounds(tmp_path: Path, emulator: Any) -> None:
    """2,000 rounds at a tiny interval against the emulator: RSS after the first 300 rounds
    and at the end differ by less than 15 MB (growth per round would show as tens of MB)."""
    import psutil

    server = emulator()
    jsonl = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "watch", "--host", server.url,
         "--interval", "0.001", "--count", "2000", "--samples", "1",
         "--state", str(tmp_path / "s"), "--jsonl", str(jsonl)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_environ())
    watched = psutil.Process(proc.pid)

    def rounds() -> int:
        try:
            with open(jsonl, "rb") as handle:
                return sum(1 for _ in handle)
        except FileNotFoundError:
            return 0

    early = late = 0
    deadline = time.monotonic() + 900
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            n = rounds()
            rss = watched.memory_info().rss
            if n >= 300 and not early:
                early = rss
            if n >= 1900:
                late = max(late, rss)
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert rounds() == 2000
    assert early and late, (early, late)
    print(f"watch RSS: {early / 2**20:.1f} MiB after 300 rounds, {late / 2**20:.1f} MiB at 2000")
    assert late - early < 15 * 1024 * 1024, (early, late)
