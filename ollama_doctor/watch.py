"""``ollama-doctor watch``: run the probes on a schedule and say only what changed.

Each round runs the cheap probes (every non-opt-in probe but ``warmup``); ``warmup`` (and
``load`` when ``--load`` asks) runs on the first round and every ``warmup_every`` rounds after.
A round that finds an error-level cause is retried at once, up to ``RETRIES`` more quick
tries; a cause seen in every try is **persistent**, one that cleared on a retry
**intermittent**. A cause is announced (``appeared``) only after ``confirm`` consecutive rounds
saw it, so one blip is not an alert, and ``resolved`` (with how long it lasted) in the first
round that no longer sees it.

State (active and pending causes, the round number) is saved after every round to a JSON
file, atomically, so a restarted watch says what is new since the last run. Alerts
(``--on-change`` commands, ``--webhook`` POSTs) run on one background thread with a bounded
queue, each bounded in time, so they never hold up the next round. Nothing kept in memory
grows with the number of rounds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ollama_doctor.session import problems, run_check

RETRIES = 3  # quick extra tries within a round after an error-level result
RETRY_PAUSE = 0.2  # seconds before the first retry; doubles
HOOK_TIMEOUT = 30.0  # seconds an --on-change command may run
WEBHOOK_TIMEOUT = 5.0  # seconds per POST
WEBHOOK_ATTEMPTS = 4  # 1 + 3 retries, backoff 1 s, 2 s, 4 s
QUEUE_SIZE = 256  # alerts waiting for delivery; beyond it the oldest news is dropped
DRAIN_TIMEOUT = 30.0  # seconds the last deliveries get when the watch ends
STATE_VERSION = 1


def default_state_path(url: str, env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/ollama-doctor/watch/<host>-<hash>.json`` (``~/.local/state`` when
    unset): one file per target, so two watches never write the same file."""
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home(),
                                                     ".local", "state"))
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in url.split("://")[-1])[:60]
    return Path(base, "ollama-doctor", "watch", f"{safe}-{digest}.json")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def human(seconds: float) -> str:
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts[:2])


# ---------------------------------------------------------------------------------------------
# What changed


@dataclass
class Tracker:
    """Active and pending causes of one target; ``update`` returns the round's changes."""

    target: str
    confirm: int = 2
    round: int = 0
    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    def update(self, observed: Mapping[str, dict[str, Any]], now: float) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        for cause, info in observed.items():
            if cause in self.active:
                self.active[cause].update(info, rounds=self.active[cause]["rounds"] + 1)
                continue
            seen = self.pending.setdefault(cause, {"count": 0, "since": now})
            seen["count"] += 1
            if seen["count"] >= self.confirm:
                del self.pending[cause]
                self.active[cause] = {**info, "since": seen["since"], "rounds": seen["count"]}
                changes.append(self._change("appeared", cause, self.active[cause], now))
        for cause in [c for c in self.active if c not in observed]:
            entry = self.active.pop(cause)
            change = self._change("resolved", cause, entry, now)
            change["duration_s"] = round(now - entry["since"], 3)
            changes.append(change)
        for cause in [c for c in self.pending if c not in observed]:
            del self.pending[cause]  # a blip: seen fewer than `confirm` rounds in a row
        return changes

    def _change(self, event: str, cause: str, info: Mapping[str, Any],
                now: float) -> dict[str, Any]:
        return {"event": event, "target": self.target, "cause": cause,
                "severity": info.get("severity"), "code": info.get("code"),
                "title": info.get("title"), "message": info.get("message"),
                "persistence": info.get("persistence"), "since": iso(info["since"]),
                "at": iso(now), "round": self.round}

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "target": self.target, "round": self.round,
                "active": self.active, "pending": self.pending, "saved_at": iso(time.time())}

    @classmethod
    def load(cls, path: Path, target: str, confirm: int,
             warn: Callable[[str], None]) -> Tracker:
        tracker = cls(target, confirm)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return tracker
        except (OSError, ValueError) as exc:
            warn(f"ignoring unreadable state file {str(path)!r}: {exc}")
            return tracker
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            warn(f"ignoring state file {str(path)!r}: unknown format")
            return tracker
        if data.get("target") != target:
            warn(f"state file {str(path)!r} belongs to {data.get('target')!r}; starting afresh")
            return tracker
        tracker.round = int(data.get("round") or 0)
        tracker.active = {k: v for k, v in (data.get("active") or {}).items()
                          if isinstance(v, dict) and isinstance(v.get("since"), (int, float))}
        tracker.pending = {k: v for k, v in (data.get("pending") or {}).items()
                           if isinstance(v, dict) and isinstance(v.get("count"), int)}
        return tracker


def observe(tries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Causes (warning and worse) seen in a round's tries; persistent when in every one of
    several tries, intermittent when a retry no longer saw it."""
    seen: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for doc in tries:
        for diag in problems(doc):
            counts[diag["cause"]] = counts.get(diag["cause"], 0) + 1
            seen.setdefault(diag["cause"], {
                "severity": diag.get("severity"), "code": diag.get("code"),
                "title": diag.get("title"), "message": diag.get("explanation")})
    for cause, info in seen.items():
        if len(tries) == 1:
            info["persistence"] = None
        else:
            info["persistence"] = "persistent" if counts[cause] == len(tries) else "intermittent"
    return seen


# ---------------------------------------------------------------------------------------------
# Alerts


class Notifier:
    """Delivers changes to ``--on-change`` and ``--webhook`` on one background thread."""

    def __init__(self, on_change: str | None, webhook: str | None,
                 env: Mapping[str, str], warn: Callable[[str], None]) -> None:
        self.on_change, self.webhook, self.env, self.warn = on_change, webhook, env, warn
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        if on_change or webhook:
            self._thread = threading.Thread(target=self._work, name="od-watch-alerts",
                                            daemon=True)
            self._thread.start()

    def send(self, change: dict[str, Any]) -> None:
        if self._thread is None:
            return
        try:
            self._queue.put_nowait(change)
        except queue.Full:
            self.warn("alert queue full (the hook or webhook is too slow); dropped "
                      f"{change['event']} {change['cause']}")

    def close(self, timeout: float = DRAIN_TIMEOUT) -> None:
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._stopping.set()
            self.warn("gave up waiting for alert deliveries")

    def _work(self) -> None:
        while True:
            change = self._queue.get()
            if change is None or self._stopping.is_set():
                return
            payload = json.dumps(change, ensure_ascii=False).encode()
            if self.on_change:
                self._run_hook(change, payload)
            if self.webhook:
                self._post(change, payload)

    def _run_hook(self, change: Mapping[str, Any], payload: bytes) -> None:
        env = dict(self.env)
        env.update({
            "OLLAMA_DOCTOR_EVENT": str(change["event"]),
            "OLLAMA_DOCTOR_CAUSE": str(change["cause"]),
            "OLLAMA_DOCTOR_SEVERITY": str(change.get("severity") or ""),
            "OLLAMA_DOCTOR_CODE": "" if change.get("code") is None else str(change["code"]),
            "OLLAMA_DOCTOR_TARGET": str(change["target"]),
            "OLLAMA_DOCTOR_ROUND": str(change["round"]),
        })
        try:
            proc = subprocess.run(self.on_change or "", shell=True, input=payload, env=env,
                                  stdout=sys.stderr.fileno() if _has_fileno(sys.stderr)
                                  else subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT, timeout=HOOK_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            self.warn(f"--on-change command ran longer than {HOOK_TIMEOUT:.0f} s; stopped it")
            return
        except OSError as exc:
            self.warn(f"--on-change command could not run: {exc}")
            return
        if proc.returncode != 0:
            self.warn(f"--on-change command exited with status {proc.returncode}")

    def _post(self, change: Mapping[str, Any], payload: bytes) -> None:
        import httpx

        shown = _origin_only(self.webhook or "")
        error = ""
        for attempt in range(WEBHOOK_ATTEMPTS):
            if attempt and self._stopping.wait(2 ** (attempt - 1)):
                return
            try:
                with httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False) as client:
                    reply = client.post(self.webhook or "", content=payload,
                                        headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            except Exception as exc:  # a malformed URL: no retry helps
                self.warn(f"--webhook {shown}: {type(exc).__name__}: {exc}")
                return
            if reply.status_code < 300:
                return
            error = f"HTTP {reply.status_code}"
            if reply.status_code < 500 and reply.status_code not in (408, 429):
                break
        self.warn(f"--webhook {shown} failed for {change['event']} {change['cause']}: {error}")


def _origin_only(url: str) -> str:
    """A webhook URL as shown in messages: chat webhooks carry their token in the path."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(the --webhook URL)"


def _has_fileno(stream: IO[str]) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class WatchConfig:
    target: Any  # target.Target
    options: Any  # context.Options
    env: Mapping[str, str]
    fs_root: str = "/"
    interval: float = 60.0
    count: int | None = None
    warmup_every: int = 10
    confirm: int = 2
    state: str | None = None
    jsonl: str | None = None
    on_change: str | None = None
    webhook: str | None = None
    json_out: bool = False
    output: str | None = None
    strict: bool = False


def probes_for_round(number: int, config: WatchConfig) -> list[str]:
    from ollama_doctor.registry import REGISTRY

    ids = [s.id for s in REGISTRY if not s.opt_in and s.id != "warmup"]
    heavy_round = config.warmup_every > 0 and (number - 1) % config.warmup_every == 0
    if heavy_round and config.options.model:
        ids.append("warmup")
    if heavy_round and config.options.load:
        ids.append("load")
    return ids


def run_round(number: int, config: WatchConfig,
              check: Callable[..., dict[str, Any]] = run_check,
              sleep: Callable[[float], bool] | None = None) -> list[dict[str, Any]]:
    """The tries of one round: one, or up to ``1 + RETRIES`` while error-level causes show."""
    ids = probes_for_round(number, config)
    tries: list[dict[str, Any]] = []
    for attempt in range(1 + RETRIES):
        if attempt:
            pause = RETRY_PAUSE * 2 ** (attempt - 1)
            if sleep is not None and sleep(pause):
                break
        # warmup/load run once a round: a retry asks only whether the failure persists
        probe_list = ids if attempt == 0 else [i for i in ids if i not in ("warmup", "load")]
        doc = check(config.target, options=config.options, probes=probe_list, env=config.env,
                    fs_root=config.fs_root, command="watch", strict=config.strict)
        tries.append(doc)
        if doc["summary"]["exit_code"] == 0:
            break
    return tries


def watch(config: WatchConfig, *, out: IO[str] | None = None, err: IO[str] | None = None,
          stop: threading.Event | None = None,
          check: Callable[..., dict[str, Any]] = run_check) -> int:
    """Run rounds until ``count`` or ``stop``; the last round's exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    stop = stop or threading.Event()

    def warn(message: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            err.write(f"ollama-doctor watch: {message}\n")
            err.flush()

    url = config.target.url
    state_path = Path(config.state).expanduser() if config.state else default_state_path(
        url, config.env)
    tracker = Tracker.load(state_path, url, config.confirm, warn)
    save_state = True
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        warn(f"cannot keep state in {str(state_path)!r}: {exc.strerror or exc}")
        save_state = False
    notifier = Notifier(config.on_change, config.webhook, config.env, warn)
    resumed = ", ".join(sorted(tracker.active)) or "none"
    warn(f"watching {url} every {config.interval:g} s; state {state_path}"
         + (f"; resuming at round {tracker.round + 1}, active causes: {resumed}"
            if tracker.round else ""))
    code = 0
    rounds = 0
    next_at = time.monotonic()
    restore = _stop_on_sigterm(stop)
    drain = DRAIN_TIMEOUT
    try:
        while not stop.is_set():
            tracker.round += 1
            rounds += 1
            try:
                tries = run_round(tracker.round, config, check=check, sleep=stop.wait)
            except Exception as exc:  # a bug in one round must not end a watch of days
                warn(f"round {tracker.round} crashed: {type(exc).__name__}: {exc}")
                tries = []
            now = time.time()
            if not tries:
                code = 1
                if config.count is not None and rounds >= config.count:
                    break
                next_at = max(next_at + config.interval, time.monotonic())
                stop.wait(next_at - time.monotonic())
                continue
            changes = tracker.update(observe(tries), now)
            last = tries[-1]
            code = int(last["summary"]["exit_code"])
            for change in changes:
                _print_change(out, change, config.json_out)
                notifier.send(change)
            _record_round(config, tracker, last, tries, changes,
                          state_path if save_state else None, warn)
            if config.count is not None and rounds >= config.count:
                break
            next_at += config.interval
            now_mono = time.monotonic()
            if next_at < now_mono:  # the round overran: start the next one now, not a burst
                next_at = now_mono
            stop.wait(next_at - now_mono)
    except KeyboardInterrupt:
        drain = 2.0  # the user wants out: a short grace for deliveries under way
        raise
    finally:
        restore()
        notifier.close(timeout=drain)
    return code


def _record_round(config: WatchConfig, tracker: Tracker, last: dict[str, Any],
                  tries: list[dict[str, Any]], changes: list[dict[str, Any]],
                  state_path: Path | None, warn: Callable[[str], None]) -> None:
    """After a round: the state file, the ``--jsonl`` line and the ``-o`` report. A write that
    fails is a warning: a watch of days must not end on a full disk."""
    from ollama_doctor.report import write_atomic

    if state_path is not None:
        try:
            write_atomic(str(state_path), json.dumps(tracker.to_dict(), indent=1))
        except OSError as exc:
            warn(f"cannot save state to {str(state_path)!r}: {exc.strerror or exc}")
    if config.jsonl:
        record = {**last, "round": tracker.round, "tries": len(tries),
                  "changes": changes, "active": sorted(tracker.active)}
        try:
            with open(config.jsonl, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            warn(f"cannot append to --jsonl {config.jsonl!r}: {exc.strerror or exc}")
    if config.output:
        from ollama_doctor.report import output_format, to_json, to_markdown

        with contextlib.suppress(OSError, ValueError):
            text = (to_json(last) if output_format(config.output) == "json"
                    else to_markdown(last))
            write_atomic(config.output, text)


def _stop_on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM ends the watch after the current round (state saved, alerts delivered)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _print_change(out: IO[str], change: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(change, ensure_ascii=False) + "\n")
    else:
        when = change["at"].replace("+00:00", "Z")
        if change["event"] == "appeared":
            extra = ", ".join(str(x) for x in (change.get("severity"), change.get("persistence"),
                                               change.get("code") and f"HTTP {change['code']}")
                              if x)
            out.write(f"{when}  appeared  {change['cause']} ({extra}): "
                      f"{change.get('message') or change.get('title')}\n")
        else:
            out.write(f"{when}  resolved  {change['cause']} after "
                      f"{human(change['duration_s'])} (since {change['since']})\n")
    out.flush()


def state_writable(path: str) -> str | None:
    """Why an explicit ``--state`` path cannot be used, or None."""
    target = Path(path).expanduser()
    folder = target.resolve().parent
    if target.is_dir():
        return f"--state {path!r} is a folder"
    if not folder.is_dir():
        return f"--state {path!r}: folder {str(folder)!r} does not exist"
    if not os.access(folder, os.W_OK):
        return f"--state {path!r}: folder {str(folder)!r} is not writable"
    return None
