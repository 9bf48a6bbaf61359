"""Remedies that work when pasted (issue 12): every command the doctor suggests is built by
``ollama_doctor.remedies``, parses as the kind it claims, and the shell ones that can run on this
machine (curl against the emulator, ``ss``, ``getent``) run and show what they promise.

Three sources are walked: the cause catalogue, the launcher-aware builder, and an in-process
``check --json`` of every scenario in ``tests/scenarios.py`` that needs no network namespace.
For the scenarios, ``FixStep`` is watched while the run builds it (our own class, not a mock of
anything on the wire), so a command typed by hand in a probe is caught where it is made.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ollama_doctor import remedies
from ollama_doctor.causes import CATALOGUE
from ollama_doctor.local import Launcher
from ollama_doctor.remedies import Command
from ollama_doctor.result import FixStep
from tests.conftest import clean_environ
from tests.scenarios import SCENARIOS, Scenario, lab

# Modules whose every command must come from remedies.py: the probes, the catalogue, and the
# log reader, request checker, client-library pitfalls and variable sanitiser.
OWNED = re.compile(r"^ollama_doctor\.(causes|remedies|logs|clientlibs|sanitize|probes\.\w+"
                   r"|request_check(\.\w+)?)$")
# Programs a remedy may run here, on loopback, without changing the machine.
RUNNABLE = {"export", "unset", "curl", "getent", "ss"}
NODE = shutil.which("node")
# A scenario → the start of a remedy line it must have run (so the runner cannot go idle).
RUNS_HERE = {"S06": "curl ", "S07": "curl ", "S16": "curl ", "S19": "curl ", "S21": "curl ",
             "S30": "curl ", "S09": "unset "}


def syntax_problem(command: str, kind: str) -> str | None:
    """Why ``command`` is not valid ``kind``; None when it is."""
    if "…" in command or re.search(r"<[a-z][a-z _-]*>", command):
        return "an ellipsis or <placeholder> cannot be pasted"
    if kind == "shell":
        done = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True,
                              timeout=10, check=False)
        return done.stderr.strip() or None if done.returncode else None
    if kind == "python":
        try:
            compile(command, "<remedy>", "exec")
        except SyntaxError as exc:
            return f"python: {exc}"
        return None
    if kind == "javascript":
        if NODE is None:
            return None
        done = subprocess.run([NODE, "--check"], input=command, capture_output=True, text=True,
                              timeout=20, check=False)
        return done.stderr.strip()[-300:] if done.returncode else None
    if kind == "json":
        try:
            json.loads("{" + command + "}")
        except ValueError as exc:
            return f"json: {exc}"
        return None
    if kind == "env":
        return None if re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s'\"]+", command) else "not NAME=value"
    if kind == "nginx":
        return None if re.fullmatch(r"[a-z_]+ [^;]+;", command) else "not one nginx directive"
    if kind == "systemd":
        return None if re.fullmatch(r"\[[A-Za-z]+\]|[A-Za-z]+=.+", command) else "not a unit line"
    if kind == "config":
        return None if command.strip() else "empty"
    return f"unknown kind {kind!r}"


def step_problems(step: FixStep) -> list[str]:
    out = []
    for command in step.commands:
        if not isinstance(command, Command):
            out.append(f"{command!r} was not built by ollama_doctor.remedies")
            continue
        if command.kind.value != step.kind:
            out.append(f"{command!r} is {command.kind.value} in a {step.kind} step")
        problem = syntax_problem(command, command.kind.value)
        if problem:
            out.append(f"{command!r}: {problem}")
    return out


# ---------------------------------------------------------------------------------------------
# the catalogue and the builders


def test_every_catalogue_command_comes_from_remedies_and_parses() -> None:
    problems = [f"{cause.id}: {p}" for cause in CATALOGUE for step in cause.fix
                for p in step_problems(step)]
    assert problems == []
    assert any(step.kind == "nginx" for cause in CATALOGUE for step in cause.fix)


@pytest.mark.parametrize("kind", ["systemd", "launchd", "windows", "docker", "shell", "unknown"])
@pytest.mark.parametrize(("name", "value"), [
    ("OLLAMA_HOST", "0.0.0.0:11434"), ("OLLAMA_ORIGINS", "chrome-extension://*"),
    ("OLLAMA_ORIGINS", "app://*,https://my app"), ("HTTPS_PROXY", "http://proxy:3128")])
def test_server_env_is_pasteable_for_every_launcher(kind: str, name: str, value: str) -> None:
    steps = remedies.server_env(Launcher(kind, "test", "ollama.service"), name, value, 8080)
    assert [p for step in steps for p in step_problems(step)] == []
    shell = [c for step in steps for c in step.commands if c.startswith(f"{name}=")]
    for line in shell:  # the value reaches the server exactly, glob characters and all
        out = subprocess.run(["bash", "-c", line.replace("ollama serve", f"printenv {name}")],
                             capture_output=True, text=True, timeout=10, check=False)
        assert out.stdout.strip() == value


def test_known_wrong_remedies_are_fixed() -> None:
    show = remedies.curl_with_token("http://127.0.0.1:11434/api/show", "llama3.2")
    assert show == ("curl -H 'Authorization: Bearer YOUR_TOKEN' http://127.0.0.1:11434/api/show "
                    "-d '{\"model\": \"llama3.2\"}'")  # -d makes it a POST: GET is a 405
    assert remedies.api_key_export() == "export OLLAMA_API_KEY=YOUR_TOKEN"
    assert remedies.listening_on(44835) == "sudo ss -ltnp 'sport = :44835'"
    [fix] = remedies.unresponsive_fix(44835)
    assert "sudo ss -ltnp 'sport = :44835'" in fix.commands
    assert remedies.serve_with("OLLAMA_ORIGINS", "chrome-extension://*") == \
        "OLLAMA_ORIGINS='chrome-extension://*' ollama serve"
    assert remedies.journal() == "journalctl -u ollama -n 50"


def test_zsh_takes_the_quoted_glob() -> None:
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed; bash -n covers POSIX syntax")
    line = remedies.serve_with("OLLAMA_ORIGINS", "chrome-extension://*", then="printenv "
                               "OLLAMA_ORIGINS")
    out = subprocess.run([zsh, "-c", line], capture_output=True, text=True, timeout=10,
                         check=False)
    assert out.stdout.strip() == "chrome-extension://*", out.stderr


# ---------------------------------------------------------------------------------------------
# every scenario that runs without a network namespace, in-process


LOCAL = [pytest.param(s, id=s.id) for s in SCENARIOS if not s.netns]


@pytest.fixture
def built_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, FixStep]]]:
    """Every FixStep made while the test runs, with the module that made it."""
    made: list[tuple[str, FixStep]] = []
    original = FixStep.__post_init__

    def watch(self: FixStep) -> None:
        original(self)
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") in (
                "ollama_doctor.result", "ollama_doctor.remedies", __name__) \
                and frame.f_code.co_name in ("__post_init__", "__init__", "watch", "step"):
            frame = frame.f_back  # type: ignore[assignment]
        made.append((frame.f_globals.get("__name__", "?") if frame else "?", self))

    monkeypatch.setattr(FixStep, "__post_init__", watch)
    yield made


def _check_in_process(args: list[str], env: dict[str, str],
                      monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from typer.testing import CliRunner

    from ollama_doctor.cli import app

    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["check", "--json", *args])
    try:
        doc: dict[str, Any] = json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"no JSON (exit {result.exit_code}): {result.output[-2000:]}") \
            from exc
    return doc


def _all_steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    steps = [(d["cause"], s) for d in doc["diagnosis"] for s in d["fix"]]
    steps += [(f["cause"], s) for c in doc["checks"] for f in c["findings"] for s in f["fix"]]
    return steps


def _runnable(commands: list[str]) -> list[str] | None:
    """The step's commands as they run here (root: no sudo), or None if one cannot run here."""
    out = []
    for command in commands:
        line = command.removeprefix("sudo ")
        words = line.split()
        if not words or words[0] not in RUNNABLE:
            return None
        if words[0] == "curl":
            urls = [w.strip("'") for w in words if w.strip("'").startswith(("http://", "https://"))]
            if not urls or any(urlsplit(u).hostname not in ("127.0.0.1", "localhost", "::1")
                               for u in urls):
                return None
        out.append(line)
    return out


def _run_step(lines: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = "set -e\n" + "\n".join(lines) + "\n"
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                          env=env, check=False)


@pytest.mark.parametrize("scenario", LOCAL)
def test_scenario_remedies_come_from_remedies_parse_and_run(
        scenario: Scenario, built_steps: list[tuple[str, FixStep]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    with lab() as the_lab:
        run = scenario.fault(the_lab)
        env = clean_environ(run.env)
        doc = _check_in_process(run.args, env, monkeypatch)
        monkeypatch.undo()  # the remedies run in the user's environment, not pytest's

        # 1. built by remedies.py, and one kind per step
        hand_made = [f"{module}: {p}" for module, step in built_steps if OWNED.match(module)
                     for p in step_problems(step)]
        assert hand_made == []
        if any(f["fix"] for c in doc["checks"] for f in c["findings"]):
            assert any(OWNED.match(module) for module, _ in built_steps), built_steps
        # 2. what the user sees parses as the kind it claims
        problems = [f"{cause}: {cmd!r}: {syntax_problem(cmd, step.get('kind', 'shell'))}"
                    for cause, step in _all_steps(doc) for cmd in step["commands"]
                    if syntax_problem(cmd, step.get("kind", "shell"))]
        assert problems == []
        # 3. the shell steps that can run here run, and show what they promise
        seen: set[tuple[str, ...]] = set()
        for cause, step in _all_steps(doc):
            lines = _runnable(step["commands"]) if step.get("kind") == "shell" else None
            if not lines or tuple(lines) in seen:
                continue
            seen.add(tuple(lines))
            done = _run_step(lines, env)
            ran.extend(lines)
            assert done.returncode == 0, (cause, lines, done.stderr[-500:])
            for line in lines:
                promise = re.search(r"# should print: (.+)$", line)
                if promise:
                    assert promise.group(1).strip() in done.stdout, (cause, line, done.stdout)
                if line.startswith("ss "):
                    assert "State" in done.stdout or "Netid" in done.stdout, done.stdout
                if line.startswith("curl ") and "-o /dev/null" not in line:
                    status = _run_step([line + " -s -o /dev/null -w '%{http_code}'"], env)
                    assert status.stdout.strip() not in ("405", "400"), (cause, line, status)
    if scenario.id in RUNS_HERE:  # these scenarios' fixes hold commands that run here
        assert any(line.startswith(RUNS_HERE[scenario.id]) for line in ran), ran


def test_listening_on_and_getent_show_what_they_promise(emulator: Any) -> None:
    emu = emulator()
    port = urlsplit(emu.url).port
    assert port is not None
    ss = subprocess.run(["bash", "-c", remedies.listening_on(port).removeprefix("sudo ")],
                        capture_output=True, text=True, timeout=20, check=False)
    assert ss.returncode == 0, ss.stderr
    assert f":{port}" in ss.stdout and "LISTEN" in ss.stdout  # the process holding the port
    found = subprocess.run(["bash", "-c", remedies.getent("localhost")], capture_output=True,
                           text=True, timeout=20, check=False)
    assert found.returncode == 0
    assert {"127.0.0.1", "::1"} & {line.split()[0] for line in found.stdout.splitlines()}


# ---------------------------------------------------------------------------------------------
# the log reader, the request checker, the sanitiser and the client-library pitfalls, whose
# fixes no scenario of `check` reaches: each is run on inputs that make every fix it writes


LOG_FIXTURES = sorted((Path(__file__).parent / "data" / "logs").glob("*.log"))


def _made_by(built: list[tuple[str, FixStep]], module: str) -> list[FixStep]:
    """The steps with commands that ``module`` made; any made elsewhere in the package by hand
    is reported too."""
    stray = [f"{where}: {p}" for where, step in built if not OWNED.match(where)
             and where.startswith("ollama_doctor.") for p in step_problems(step)]
    assert stray == []
    return [step for where, step in built if where.startswith(module) and step.commands]


def test_log_fixes_come_from_remedies(built_steps: list[tuple[str, FixStep]]) -> None:
    from ollama_doctor import logs

    causes = set()
    for path in LOG_FIXTURES:
        lines = path.read_text(encoding="utf-8").splitlines()
        causes |= {f.cause for f in logs.findings(logs.classify(lines), path.name)}
    steps = _made_by(built_steps, "ollama_doctor.logs")
    assert {"slow-model-load", "ollama-outdated", "fd-limit-low", "gpu-offload"} <= causes
    assert len(steps) >= 5  # preload, keep-alive, load timeout, upgrade, open files, GPU
    assert [p for step in steps for p in step_problems(step)] == []
    kinds = {step.kind for step in steps}
    assert kinds == {"shell", "env"}  # OLLAMA_LOAD_TIMEOUT=15m is no shell line: no `$`


REQUEST_BODIES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("/api/generate", {"model": "m", "prompt": "hi", "options": {
        "num_parallel": 4, "flash_attention": True, "kv_cache_type": "q8_0",
        "f16_kv": True, "keep_alive": "5m", "use_mlock": True}}, {}),
    ("/api/generate", {"prompt": "hi"}, {}),
    ("/api/chat", {"model": "m; rm -rf", "messages": [], "think": True},
     {"capabilities": ["completion"]}),
    ("/api/chat", {"model": "m", "messages": [], "tools": [{"type": "function"}]},
     {"capabilities": ["completion"]}),
    ("/api/generate", {"model": "m", "prompt": "x" * 40000}, {"default_num_ctx": 4096}),
]


def test_request_check_fixes_come_from_remedies(built_steps: list[tuple[str, FixStep]]) -> None:
    from ollama_doctor.request_check import check_request

    rules: set[str] = set()
    for endpoint, body, facts in REQUEST_BODIES:
        rules |= set(check_request(body, endpoint, **facts).rules())
    assert {"server-setting", "model-missing", "think-capability", "tools-capability",
            "prompt-too-long"} <= rules
    steps = _made_by(built_steps, "ollama_doctor.request_check")
    assert [p for step in steps for p in step_problems(step)] == []
    commands = [c for step in steps for c in step.commands]
    assert "ollama show 'm; rm -rf'" in commands  # a model name is quoted, never run
    assert "sudo systemctl edit ollama   # add: [Service]  Environment=\"OLLAMA_NUM_PARALLEL=4\"" \
        in commands  # the request's own value, not an ellipsis
    assert "OLLAMA_FLASH_ATTENTION=1 ollama serve" in commands
    assert "OLLAMA_KV_CACHE_TYPE=VALUE ollama serve" in commands  # f16_kv: true is no type
    assert {step.kind for step in steps} == {"shell", "env"}


def test_sanitize_fix_comes_from_remedies_and_strips_the_key(
        built_steps: list[tuple[str, FixStep]]) -> None:
    from ollama_doctor.sanitize import api_key_finding

    finding = api_key_finding({"OLLAMA_API_KEY": "sk-123\r"})
    assert finding is not None
    [step] = _made_by(built_steps, "ollama_doctor.sanitize")
    assert step_problems(step) == []
    export = next(c for c in step.commands if c.startswith("export "))
    done = subprocess.run(["bash", "-c", f"{export}; printf %s \"$OLLAMA_API_KEY\""],
                          capture_output=True, text=True, timeout=10, check=False,
                          env={"PATH": os.environ.get("PATH", ""), "OLLAMA_API_KEY": "sk-123\r"})
    assert done.stdout == "sk-123"


def _pitfall_cases() -> list[Any]:
    from ollama_doctor.clients import CLIENTS

    cases = []
    for family in CLIENTS:
        if not family.pitfalls:
            continue
        ecosystem, package = family.packages[0]
        for rule in family.pitfalls:
            known = _PITFALL_DATA.get(rule.id)
            marks = [pytest.mark.xfail(reason=known, strict=True)] if known else []
            cases.append(pytest.param(ecosystem, package, rule.id, id=rule.id, marks=marks))
    return cases


# Pitfalls whose command lines in ollama_doctor/clients.py (a table this change does not own)
# cannot pass yet: a step mixing a shell install with code, or a literal "…" in code. Strict:
# a fixed row fails here until it is taken off this list.
_PITFALL_DATA: dict[str, str] = {}


@pytest.mark.parametrize(("ecosystem", "package", "rule_id"), _pitfall_cases())
def test_client_pitfall_fixes_come_from_remedies(
        ecosystem: str, package: str, rule_id: str,
        built_steps: list[tuple[str, FixStep]]) -> None:
    from ollama_doctor.clientlibs import CLIENT_OF, Installed, pitfalls

    lib = Installed(ecosystem, package, None, "any", "test", CLIENT_OF[(ecosystem, package)])
    [finding] = [f for f in pitfalls([lib]) if f.evidence["rule"] == rule_id] or [None]
    if finding is None:  # a ranged rule: take a version inside its range
        rule = next(p for _, p in _rules() if p.id == rule_id)
        bound = re.search(r"[0-9][0-9.]*", rule.versions)
        assert bound is not None
        version = bound.group(0) if ">" in rule.versions else "0.0.1"
        lib = Installed(ecosystem, package, version, f"=={version}", "test", lib.client)
        [finding] = [f for f in pitfalls([lib]) if f.evidence["rule"] == rule_id]
    steps = [s for s in _made_by(built_steps, "ollama_doctor.clientlibs")
             if s in finding.fix]
    assert steps == [s for s in finding.fix if s.commands]
    assert [p for step in steps for p in step_problems(step)] == []


def _rules() -> list[tuple[str, Any]]:
    from ollama_doctor.clients import CLIENTS

    return [(family.name, rule) for family in CLIENTS for rule in family.pitfalls]
