"""The assertions of the real-client tier, shared by the tests and the benchmark.

``offline(entry, text)`` reads a fixture with ``errortext.analyse`` (what ``explain --error``
does, no network); ``live(entries)`` rebuilds the fixture's situation and runs the real CLI
(``check --json --error-file FIXTURE``) in it with the client's environment and no ``--host``.
Both return plain data, so a miss can be printed with the doctor's answer.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.clients.apps import family
from tests.clients.record import NO_OUTPUT
from tests.clients.situations import BY_ID, REPO, Build

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST = FIXTURES / "manifest.json"
TOP_N = 3
DOCTOR_TIMEOUT = 120.0


def printed_by(situation: str, text: str, client: str) -> set[str]:
    """The client families that may be named for ``text``: its own, and any other whose call in
    the same situation printed exactly the same bytes (an app that crashes in its own code on a
    200 that is not Ollama, with no library frame, looks the same whatever library fetched it:
    no reader can tell them apart)."""
    families = {client}
    for entry in load_manifest():
        if entry["situation"] == situation and entry.get("outcome") != "succeeded":
            other = FIXTURES / entry["file"]
            if other.is_file() and other.read_text() == text:
                families.add(family(entry["client"]))
    return families


def load_manifest(path: Path = MANIFEST) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = json.loads(path.read_text())["entries"]
    return entries


def failing(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries whose call failed (a client that succeeded has nothing to diagnose)."""
    return [e for e in entries if e["outcome"] != "succeeded"]


def printed_nothing(text: str) -> bool:
    """The call was stopped while still waiting and had printed nothing (curl's fixtures
    still show the command line typed above it)."""
    marker = NO_OUTPUT.split("{", 1)[0]
    return any(line.startswith(marker) for line in text.splitlines())


def _split(value: str) -> tuple[str, str, int]:
    parts = urlsplit(value)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_server(got: str, want: str) -> bool:
    """Same scheme, host and port; ``localhost`` and a loopback address are the same host
    (a client prints the address it dialled for a name it resolved)."""
    gs, gh, gp = _split(got)
    ws, wh, wp = _split(want)
    hosts = gh == wh or (_loopback(gh) and _loopback(wh))
    return gs == ws and gp == wp and hosts


@dataclass
class Offline:
    causes: list[str]
    client: str | None
    target: str | None  # scheme://host:port from the text, or None
    problems: list[str] = field(default_factory=list)


def offline(entry: dict[str, Any], text: str) -> Offline:
    from ollama_doctor import errortext
    from ollama_doctor.target import parse_target

    analysis = errortext.analyse(text)
    raw = errortext.target_from(analysis.extracted)
    target = None
    if raw is not None:
        t = parse_target(raw, "error-text")
        host = f"[{t.host}]" if ":" in t.host else t.host
        target = f"{t.scheme}://{host}:{t.port}"
    result = Offline(analysis.causes, analysis.client, target)
    expected = entry["expected"]
    if entry["evidence"] == "text" and expected not in analysis.causes[:TOP_N]:
        result.problems.append(f"{expected} not in the top {TOP_N} {analysis.causes[:TOP_N]}")
    elif expected not in analysis.causes:
        result.problems.append(f"{expected} not among the candidates {analysis.causes}")
    if analysis.client not in printed_by(entry["situation"], text, family(entry["client"])):
        result.problems.append(f"client {analysis.client!r}, not {family(entry['client'])!r}")
    if target is not None and not same_server(target, entry["target"]):
        result.problems.append(f"target {target}, not {entry['target']}")
    return result


@dataclass
class Live:
    exit_code: int
    top: str | None
    target: str | None
    problems: list[str] = field(default_factory=list)
    error: str = ""


def _doctor_env(entry: dict[str, Any]) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "COLUMNS": "100",
            "NO_COLOR": "1", "HOME": tempfile.gettempdir(), **entry["env"]}


def _run_doctor(build: Build, entry: dict[str, Any], text_file: Path) -> Live:
    argv = [sys.executable, "-m", "ollama_doctor", "check", "--json", *entry["doctor_args"]]
    if not printed_nothing(text_file.read_text()):
        argv += ["--error-file", str(text_file)]  # a call that printed nothing: nothing to paste
    try:
        done = build.ns.run(argv, timeout=DOCTOR_TIMEOUT, cwd=REPO, env=_doctor_env(entry))
    except subprocess.TimeoutExpired:
        return Live(-1, None, None, [f"check did not finish in {DOCTOR_TIMEOUT:g} s"])
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        return Live(done.returncode, None, None,
                    [f"no JSON (exit {done.returncode})"], done.stderr[-1500:])
    ranked = [d for d in doc.get("diagnosis", []) if d.get("severity") != "info"]
    top = ranked[0]["cause"] if ranked else None
    url = (doc.get("target") or {}).get("url")
    live = Live(done.returncode, top, url)
    if top != entry["expected"]:
        live.problems.append(f"top cause {top!r}, not {entry['expected']!r}")
    if done.returncode != 1:
        live.problems.append(f"exit code {done.returncode}, not 1")
    if not url or not same_server(url, entry["target"]):
        live.problems.append(f"target {url}, not {entry['target']}")
    return live


def live(entries: list[dict[str, Any]], fixtures: Path = FIXTURES, workers: int = 4,
         at_once: int = 3) -> dict[tuple[str, str], Live]:
    """Rebuild each situation once (once per entry where every call needs a fresh server) and
    run ``check`` for its entries side by side; ``at_once`` situations at a time (the checks
    mostly wait on the network)."""
    from tests.support.netns import require_netns

    require_netns()
    out: dict[tuple[str, str], Live] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        groups.setdefault(entry["situation"], []).append(entry)
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for sid, group in groups.items():
        if BY_ID[sid].fresh_per_client:
            batches += [(sid, [e]) for e in group]
        else:
            batches.append((sid, group))

    def one(batch: tuple[str, list[dict[str, Any]]]) -> None:
        sid, group = batch
        situation = BY_ID[sid]
        with ExitStack() as stack:
            build = Build(stack, situation)
            situation.setup(build)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(
                    lambda e: _run_doctor(build, e, fixtures / e["file"]), group))
        for entry, result in zip(group, results, strict=True):
            out[(sid, entry["client"])] = result

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        list(pool.map(one, batches))
    return out
