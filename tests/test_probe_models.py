"""The ``models`` probe: pure helpers by table, the probe in-process with a faked ``ollama``
CLI, then the real CLI against the emulator (S13, S14, S29, cloud models)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor.context import Context, Options
from ollama_doctor.probes import models
from ollama_doctor.probes.models import CommandResult
from ollama_doctor.result import Severity, Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun
from tests.support.report import check_of, commands, errors, top

LISTING = (
    "NAME                       ID              SIZE      MODIFIED\n"
    "llama3.2:latest            a80c4f17acd5    2.0 GB    3 weeks ago\n"
    "qwen3:8b                   500a1f067a9f    5.2 GB    2 days ago\n"
)


def fake_cli(tmp_path: Path, listing: str | None) -> dict[str, str]:
    """An environment whose PATH holds only a fake ``ollama`` printing ``listing`` (or no
    ``ollama`` at all when ``listing`` is None)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    if listing is not None:
        script = bindir / "ollama"
        body = "".join(f"printf '%s\\n' '{line}'\n" for line in listing.splitlines())
        script.write_text(f'#!/bin/sh\n[ "$1" = list ] || exit 2\n{body}')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": str(bindir)}




# ---------------------------------------------------------------------------------------------
# pure helpers


@pytest.mark.parametrize(("needs", "asked", "unknown"), [
    (("tools",), ["tools"], []),
    (("tools,vision", "Tools"), ["tools", "vision"], []),
    (("chat", "generate", "embed", "embeddings", "think"), ["completion", "embedding",
                                                             "thinking"], []),
    (("insert", "image", "audio"), ["insert", "image", "audio"], []),
    (("json", "tools"), ["tools"], ["json"]),
    (("", " , "), [], []),
])
def test_normalise_needs(needs: tuple[str, ...], asked: list[str], unknown: list[str]) -> None:
    assert models.normalise_needs(needs) == (asked, unknown)


@pytest.mark.parametrize(("host", "base"), [
    ("http://127.0.0.1:11434", "http://127.0.0.1:11434"),
    ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434"),
    ("http://127.0.0.1:11434/api", "http://127.0.0.1:11434"),
    ("https://gw.example.com:443/ollama", "https://gw.example.com:443/ollama"),
    ("https://gw.example.com:443/ollama/v1", "https://gw.example.com:443/ollama"),
    ("0.0.0.0:11434", "http://127.0.0.1:11434"),
])
def test_native_base(host: str, base: str) -> None:
    assert models.native_base(Context(target=parse_target(host))) == base


def records(body: bytes) -> list[dict[str, Any]] | None:
    rows = models.parse_tags(body)
    return None if rows is None else [row.record() for row in rows]


@pytest.mark.parametrize(("body", "expected"), [
    (b"", None), (b"null", None), (b"[]", None), (b"<html>", None),
    (b'{"models":"x"}', None),
    (b'{"models":[{"name":"a"}]', None),  # cut short
    (b'{"models":[{"name":"a"},]}', None),  # not JSON
    (b'{"models":[]} trailing', None),
    (b'{"models":[{"name":"\xff"}]}', None),  # not UTF-8
    (b"{}", []), (b'{"models":null}', []),  # Go's nil slice
    (b'{"models":[]}', []),
    (b' { "models" : [ 1 , {"name":""}, {"details":[]}, null ] } \n', []),
    (b'{"models":[{"name":"a"}],"models":null}', []),  # the last key counts, as in json.loads
    (b'{"models":[{"model":"a:latest","size":"big","details":"x"}]}',
     [{"name": "a:latest", "size": None, "size_human": None, "family": None,
       "parameter_size": None, "quantization": None}]),
    (b'\xef\xbb\xbf{"other":{"x":[1,2]},"models":[{"name":"\\u00e9t\xc3\xa9:1b","size":1200,'
     b'"remote_host":"https://ollama.com:443","capabilities":["tools",{"x":1},"vision"],'
     b'"details":{"family":"qwen3","parameter_size":"8.2B","quantization_level":"Q4_K_M"}}]}',
     [{"name": "\u00e9t\u00e9:1b", "size": 1200, "size_human": "1.2 KB", "family": "qwen3",
       "parameter_size": "8.2B", "quantization": "Q4_K_M", "capabilities": ["tools", "vision"],
       "remote_host": "https://ollama.com:443"}]),
])
def test_parse_tags_tolerates_garbage(body: bytes, expected: list[dict[str, Any]] | None
                                      ) -> None:
    assert records(body) == expected


def reference(body: bytes) -> list[dict[str, Any]]:
    """What the rows must be: json.loads of the whole body, then the per-model rules."""
    out = []
    for item in json.loads(body)["models"] or []:
        if not isinstance(item, dict):
            continue
        name = item.get("name") or item.get("model")
        if not isinstance(name, str) or not name:
            continue
        details = item.get("details") if isinstance(item.get("details"), dict) else {}
        size = item.get("size") if isinstance(item.get("size"), int) else None
        row = {"name": name, "size": size, "size_human": models._human(size),
               "family": details.get("family"), "parameter_size": details.get("parameter_size"),
               "quantization": details.get("quantization_level")}
        if isinstance(item.get("capabilities"), list):
            row["capabilities"] = [c for c in item["capabilities"] if isinstance(c, str)]
        if isinstance(item.get("remote_host"), str):
            row["remote_host"] = item["remote_host"]
        out.append(row)
    return out


@pytest.mark.parametrize("body", [
    # "},{" inside a string, and inside a nested array: not a boundary between models
    b'{"models":[{"name":"a},{b"},{"name":"c\\"},{\\"d"},{"name":"e","families":[{"x":1},'
    b'{"y":2}],"details":{"family":"f"}},{"name":"g"}]}',
    # "},{" after the array, in another key's value
    b'{"models":[{"name":"a"},{"name":"b","size":3}],"x":[{},{}],"y":{"z":[{},{}]}}',
    # blanks between models, objects without a name, values of every type
    b'{"models":[ {"name":"a"} ,\n{"model":"b:1b","size":1.5}, {}, [], "s", 2, null,'
    b'{"name":"c","capabilities":[{"x":1},"tools"],"remote_host":7,"details":[1]}]}',
])
def test_parse_tags_reads_every_model_once_whatever_the_text(body: bytes) -> None:
    many = body.replace(b'{"models":[', b'{"models":[' + b'{"name":"pad"},' * 5000, 1)
    for text in (body, many):
        assert records(text) == reference(text)


@pytest.mark.parametrize("indent", [None, 3])
def test_parse_tags_reads_values_across_its_windows(indent: int | None) -> None:
    """Models that straddle the decoding window's edge (numbers, escaped and multi-byte
    strings cut in two) parse exactly as json.loads reads them."""
    items = [{"name": f"m\u00e9-{i}\"q\":{'x' * (i % 97)}", "size": 10 ** (i % 13),
              "details": {"family": "llama", "parameter_size": "3.2B",
                          "quantization_level": "Q4_K_M"},
              **({"capabilities": ["completion"]} if i % 3 else {})} for i in range(6000)]
    body = json.dumps({"models": items}, indent=indent, ensure_ascii=False).encode()
    assert len(body) > 3 * models._WINDOW
    assert records(body) == reference(body)


def test_parse_tags_refuses_one_huge_model() -> None:
    """One value longer than _MAX_VALUE (and the window after it) is not an Ollama answer:
    the decoded window stays bounded whatever the body."""
    huge = (b'{"models":[{"name":"a","pad":"' + b"x" * (models._MAX_VALUE + models._WINDOW)
            + b'"}]}')
    assert models.parse_tags(huge) is None
    assert records(b'{"models":[{"name":"a","pad":"' + b"x" * 1000 + b'"}]}') == [
        {"name": "a", "size": None, "size_human": None, "family": None,
         "parameter_size": None, "quantization": None}]


def test_run_command_bounds_output_and_time(tmp_path: Path) -> None:
    loud = models.run_command([sys.executable, "-c", "import sys\nsys.stdout.write('x'*600000)"],
                              {}, 10)
    assert loud.returncode == 0
    assert len(loud.stdout) == models.MAX_CLI_OUTPUT
    started = time.monotonic()
    slow = models.run_command([sys.executable, "-c", "import time; time.sleep(30)"], {}, 0.5)
    assert time.monotonic() - started < 5
    assert slow.returncode is None and slow.error == "no answer within 0.5 s"
    missing = models.run_command([str(tmp_path / "nope")], {}, 1)
    assert missing.returncode is None and missing.error is not None
    assert missing.error.startswith("FileNotFoundError")


# ---------------------------------------------------------------------------------------------
# in-process, with the runner injected


def test_injected_runner_sees_the_cli(emulator: Callable[..., Any], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator(models=[])
    env = fake_cli(tmp_path, "#")  # a file named ollama on PATH; its output is faked below
    env["OLLAMA_HOST"] = "http://127.0.0.1:11434"
    calls: list[tuple[list[str], float]] = []

    def runner(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> CommandResult:
        calls.append((list(argv), timeout))
        assert env["OLLAMA_HOST"] == "http://127.0.0.1:11434"  # the user's own environment
        return CommandResult(0, LISTING, "")

    monkeypatch.setattr(models, "COMMAND_RUNNER", runner)
    ctx = Context(target=parse_target(emu.url), options=Options(model="llama3.2"), env=env)
    out = models.run(ctx)
    assert calls == [([str(tmp_path / "bin" / "ollama"), "list"], 5.0)]
    assert out.status is Status.FAIL
    assert [(f.cause, f.severity, f.code) for f in out.findings] == [
        ("model-not-found", Severity.ERROR, 404), ("wrong-instance", Severity.ERROR, 404)]
    wrong = out.findings[1]
    assert wrong.message == (
        f"'llama3.2' is not on the server at {emu.url}, but the ollama CLI (which talks to "
        "http://127.0.0.1:11434) lists it: your client talks to another instance.")
    assert wrong.fix[0].commands == ("export OLLAMA_HOST=http://127.0.0.1:11434",)
    assert out.facts["instances"]["cli"]["models"] == ["llama3.2:latest", "qwen3:8b"]


def test_failing_cli_is_only_a_fact(emulator: Callable[..., Any], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator()
    monkeypatch.setattr(models, "COMMAND_RUNNER", lambda argv, env, timeout: CommandResult(
        1, "", "Error: could not connect to ollama server, run 'ollama serve' to start it\n"))
    ctx = Context(target=parse_target(emu.url), options=Options(model="llama3.1"),
                  env=fake_cli(tmp_path, "#"))
    out = models.run(ctx)
    assert [f.cause for f in out.findings] == ["model-not-found"]
    assert out.facts["instances"]["cli"]["stderr"].startswith("Error: could not connect")
    assert "models" not in out.facts["instances"]["cli"]


def test_cli_not_run_when_the_model_is_there(emulator: Callable[..., Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator()

    def runner(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> CommandResult:
        raise AssertionError("ollama list must not run")

    monkeypatch.setattr(models, "COMMAND_RUNNER", runner)
    ctx = Context(target=parse_target(emu.url), options=Options(model="llama3.2"),
                  env=fake_cli(tmp_path, "#"))
    out = models.run(ctx)
    assert out.status is Status.PASS and out.findings == []
    assert "instances" not in out.facts


# ---------------------------------------------------------------------------------------------
# S13: a typo or a wrong tag


def test_s13_typo_did_you_mean(cli: Callable[..., CliRun], emulator: Callable[..., Any],
                               tmp_path: Path) -> None:
    emu = emulator(models=["llama3.2:latest", "nomic-embed-text"])
    run = cli("check", "--host", emu.url, "-m", "llama3.1", "--json",
              env=fake_cli(tmp_path, None))
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"], diag["severity"]) == ("model-not-found", 404, "error")
    assert diag["explanation"] == (f"Model 'llama3.1' is not on the server at {emu.url}: "
                                   "did you mean llama3.2:latest?")
    assert commands(diag) == [f"OLLAMA_HOST={emu.url} ollama pull llama3.1",
                              '"model": "llama3.2:latest"']
    assert diag["evidence"]["show"]["status"] == 404
    assert diag["evidence"]["show"]["body"] == '{"error":"model \'llama3.1:latest\' not found"}'
    assert errors(doc) == ["model-not-found"]


def test_s13_wrong_tag(cli: Callable[..., CliRun], emulator: Callable[..., Any],
                       tmp_path: Path) -> None:
    emu = emulator(models=["llama3.1:8b", "llama3.2:latest"])
    run = cli("probe", "models", "--host", emu.url, "-m", "llama3.2:1b", "--json",
              env=fake_cli(tmp_path, None))
    diag = top(run.json())
    assert (diag["cause"], diag["code"]) == ("model-not-found", 404)
    assert diag["evidence"]["suggestions"] == ["llama3.2:latest", "llama3.1:8b"]
    assert diag["explanation"].endswith("did you mean llama3.2:latest or llama3.1:8b?")


def test_s13_healthy_case_variant_matches(cli: Callable[..., CliRun],
                                         emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest;size=2019393189"])
    run = cli("probe", "models", "--host", emu.url, "-m", "Llama3.2", "--json")
    assert run.code == 0, run.stdout
    doc = run.json()
    assert errors(doc) == []
    facts = check_of(doc, "models")["facts"]
    assert facts["model"]["installed_as"] == "llama3.2:latest"
    assert facts["model"]["show"] == {
        "capabilities": ["completion", "tools"], "context_length": 4096,
        "parameter_size": "3.2B", "family": "llama", "quantization": "Q4_K_M",
        "architecture": "llama"}
    assert facts["models"] == [{
        "name": "llama3.2:latest", "size": 2019393189, "size_human": "2.0 GB", "family": "llama",
        "parameter_size": "3.2B", "quantization": "Q4_K_M",
        "capabilities": ["completion", "tools"]}]


@pytest.mark.parametrize("name", ["llama3.2", "LLAMA3.2:Latest",
                                  "registry.ollama.ai/library/llama3.2",
                                  "https://registry.ollama.ai/library/Llama3.2:latest"])
def test_s13_healthy_prefix_and_tag_variants_match(name: str,
                                                   emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest"])
    out = models.run(Context(target=parse_target(emu.url), options=Options(model=name)))
    assert (out.status, out.findings) == (Status.PASS, [])
    assert out.facts["model"]["installed_as"] == "llama3.2:latest"


def test_no_model_lists_and_passes(cli: Callable[..., CliRun],
                                   emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest", "qwen3:8b;size=5.2G;params=8.2B"])
    run = cli("probe", "models", "--host", emu.url, "--json")
    assert run.code == 0
    check = check_of(run.json(), "models")
    assert (check["status"], check["summary"]) == ("pass", f"2 models on {emu.url} — direct")
    assert [(m["name"], m["size_human"], m["parameter_size"]) for m in check["facts"]["models"]] \
        == [("llama3.2:latest", "2.0 GB", "3.2B"), ("qwen3:8b", "5.2 GB", "8.2B")]


def test_empty_store_without_model_is_only_a_note(cli: Callable[..., CliRun],
                                                  emulator: Callable[..., Any],
                                                  tmp_path: Path) -> None:
    emu = emulator(models=[])
    run = cli("probe", "models", "--host", emu.url, "--json", env=fake_cli(tmp_path, None))
    assert run.code == 0
    doc = run.json()
    check = check_of(doc, "models")
    assert (check["status"], check["summary"], check["findings"]) == (
        "warn", f"no models installed on {emu.url} — direct", [])
    assert doc["summary"]["status"] == "healthy"


def test_openai_base_has_both_views(emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest", "qwen3:8b"])
    out = models.run(Context(target=parse_target(emu.url + "/v1"),
                             options=Options(model="qwen3:8b")))
    assert (out.status, out.findings) == (Status.PASS, [])
    facts = out.facts
    assert facts["native_base"] == emu.url
    assert facts["openai_models"]["ids"] == ["llama3.2:latest", "qwen3:8b"]
    assert facts["openai_models"]["agrees"] is True


# ---------------------------------------------------------------------------------------------
# S14: another instance answers


def test_s14_other_server_and_cli_hold_the_model(cli: Callable[..., CliRun],
                                                 emulator: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    empty = emulator(models=[])
    full = emulator(models=["llama3.2:latest"])
    run = cli("check", "--host", empty.url, "-m", "llama3.2", "--json",
              "--server-pid", str(os.getpid()), env=fake_cli(tmp_path, LISTING))
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"], diag["confidence"]) == ("wrong-instance", 404, "high")
    assert diag["explanation"] == (
        f"'llama3.2' is not on the server at {empty.url}, but the ollama CLI (which talks to "
        f"http://127.0.0.1:11434) lists it; the server at {full.url} (pid {os.getpid()}) has "
        "it as llama3.2:latest: your client talks to another instance.")
    assert commands(diag)[:2] == ["export OLLAMA_HOST=http://127.0.0.1:11434",
                                  f"export OLLAMA_HOST={full.url}"]
    # the 404 is explained by the other instance, not reported as a second cause
    assert [e["cause"] for e in diag["evidence"]["explains"]] == ["model-not-found"]
    assert errors(doc) == ["wrong-instance"]


def test_s14_other_server_alone(cli: Callable[..., CliRun], emulator: Callable[..., Any],
                                tmp_path: Path) -> None:
    empty = emulator(models=[])
    full = emulator(models=["llama3.2:latest"])
    run = cli("probe", "models", "--host", empty.url, "-m", "llama3.2", "--json",
              "--server-pid", str(os.getpid()), env=fake_cli(tmp_path, None))
    diag = top(run.json())
    assert (diag["cause"], diag["code"]) == ("wrong-instance", 404)
    assert commands(diag)[0] == f"export OLLAMA_HOST={full.url}"
    others = diag["evidence"]["other_servers"]
    assert {"pid": os.getpid(), "url": full.url, "models": ["llama3.2:latest"]} in others


def test_s14_empty_store_no_model_cli_lists_models(cli: Callable[..., CliRun],
                                                   emulator: Callable[..., Any],
                                                   tmp_path: Path) -> None:
    emu = emulator(models=[])
    run = cli("probe", "models", "--host", emu.url, "--json", env=fake_cli(tmp_path, LISTING))
    doc = run.json()
    assert run.code == 0  # a warning: no call named a model yet
    diag = top(doc)
    assert (diag["cause"], diag["severity"], diag["code"]) == ("wrong-instance", "warning", 404)
    assert diag["explanation"] == (
        f"The server at {emu.url} has no models, but the ollama CLI (which talks to "
        "http://127.0.0.1:11434) lists 2 models: your client talks to another instance.")


def test_s14_healthy_cli_agrees(cli: Callable[..., CliRun], emulator: Callable[..., Any],
                                tmp_path: Path) -> None:
    emu = emulator(models=["llama3.2:latest", "qwen3:8b"])
    run = cli("probe", "models", "--host", emu.url, "-m", "qwen3:8b", "--json",
              "--server-pid", str(os.getpid()), env=fake_cli(tmp_path, LISTING))
    assert run.code == 0
    assert errors(run.json()) == []


def test_missing_everywhere_is_model_not_found(cli: Callable[..., CliRun],
                                               emulator: Callable[..., Any],
                                               tmp_path: Path) -> None:
    emu = emulator(models=["llama3.2:latest"])
    run = cli("probe", "models", "--host", emu.url, "-m", "mistral", "--json",
              env=fake_cli(tmp_path, LISTING))
    doc = run.json()
    diag = top(doc)
    assert (diag["cause"], diag["code"]) == ("model-not-found", 404)
    assert diag["explanation"] == (f"Model 'mistral' is not on the server at {emu.url}: it has "
                                   "llama3.2:latest.")
    assert errors(doc) == ["model-not-found"]


# ---------------------------------------------------------------------------------------------
# S29: a capability the model lacks


def test_s29_tools_on_a_model_without_tools(cli: Callable[..., CliRun],
                                            emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest", "gemma2:2b;caps=completion",
                           "nomic-embed-text"])
    run = cli("check", "--host", emu.url, "-m", "gemma2:2b", "--needs", "tools", "--json")
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"]) == ("model-capability", 400)
    assert diag["explanation"] == ("gemma2:2b cannot do what the call needs: it lacks tools (it "
                                   "has completion). On this server llama3.2:latest has it.")
    assert diag["evidence"]["ollama_answers"] == [
        "400 registry.ollama.ai/library/gemma2:2b does not support tools"]
    assert commands(diag) == ['"model": "llama3.2:latest"',
                              f"OLLAMA_HOST={emu.url} ollama pull llama3.1"]


def test_s29_healthy_capability_present(cli: Callable[..., CliRun],
                                        emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest"])
    run = cli("probe", "models", "--host", emu.url, "-m", "llama3.2", "--needs", "tools",
              "--needs", "chat", "--json")
    assert run.code == 0
    doc = run.json()
    assert errors(doc) == []
    assert check_of(doc, "models")["facts"]["needs"] == {"asked": ["tools", "completion"],
                                                        "missing": []}


def test_embedding_model_for_chat(cli: Callable[..., CliRun],
                                  emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["nomic-embed-text"])
    run = cli("probe", "models", "--host", emu.url, "-m", "nomic-embed-text", "--needs",
              "completion", "--json")
    diag = top(run.json())
    assert (diag["cause"], diag["code"]) == ("model-capability", 400)
    assert diag["evidence"]["ollama_answers"] == [
        '400 "nomic-embed-text" does not support generate (or chat)']
    assert diag["evidence"]["models_with_it"] == []


# ---------------------------------------------------------------------------------------------
# cloud models


def test_cloud_model_needs_signin(cli: Callable[..., CliRun],
                                  emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.2:latest"], cloud="signin")
    run = cli("check", "--host", emu.url, "-m", "gpt-oss:120b-cloud", "--json")
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"]) == ("cloud-signin-required", 401)
    assert diag["evidence"]["signin_url"].startswith("https://ollama.com/connect?name=")
    assert commands(diag) == ["ollama signin"]
    assert errors(doc) == ["cloud-signin-required"]


def test_cloud_quota_is_rate_limited(cli: Callable[..., CliRun],
                                     emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["qwen3-coder:480b-cloud"], cloud="quota")
    run = cli("probe", "models", "--host", emu.url, "-m", "qwen3-coder:480b-cloud", "--json")
    diag = top(run.json())
    assert (diag["cause"], diag["code"]) == ("rate-limited", 429)
    assert diag["explanation"].startswith(
        "Calls for qwen3-coder:480b-cloud are throttled by Ollama Cloud's usage limit (429: "
        "'you (user) have reached your session usage limit")


def test_cloud_model_signed_in_is_healthy(cli: Callable[..., CliRun],
                                          emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["gpt-oss:120b-cloud"])
    run = cli("probe", "models", "--host", emu.url, "-m", "gpt-oss:120b-cloud", "--json")
    assert run.code == 0
    facts = check_of(run.json(), "models")["facts"]
    assert facts["model"]["cloud"] is True
    assert facts["models"][0]["remote_host"] == "https://ollama.com:443"


def test_openai_client_lists_models_under_its_own_base_path(emulator: Callable[..., Any],
                                                           cli: Callable[..., CliRun]) -> None:
    """--client openai-python on the server root: the SDK calls /v1, the target stays the
    server (scheme, host and port)."""
    emu = emulator(models=["llama3.2:latest"])
    run = cli("check", "--host", emu.url, "--client", "openai-python", "--json")
    doc = run.json()
    assert doc["target"]["url"] == emu.url
    view = check_of(doc, "models")["facts"]["openai_models"]
    assert (view["request"], view["ids"], view["agrees"]) == (
        f"GET {emu.url}/v1/models", ["llama3.2:latest"], True)
    assert check_of(doc, "auth")["facts"]["call"]["request"] == f"GET {emu.url}/v1/models"


@pytest.mark.parametrize(("mode", "cause", "code"), [("disabled", "cloud-disabled", 403),
                                                      ("upstream", "bad-gateway", 502)])
def test_cloud_model_show_failures_name_their_cause(emulator: Callable[..., Any], mode: str,
                                                    cause: str, code: int) -> None:
    emu = emulator(models=["llama3.2:latest", "gpt-oss:120b-cloud"], cloud=mode)
    out = models.run(Context(target=parse_target(emu.url),
                             options=Options(model="gpt-oss:120b-cloud")))
    assert [(f.cause, f.severity.value, f.code) for f in out.findings] == [(cause, "error", code)]
    assert out.status.value == "fail"


# ---------------------------------------------------------------------------------------------
# /api/tags: fetched once per run, shared by the models and auth probes


def tags_requests(emu: Any) -> list[Any]:
    return [r for r in emu.requests if r.path == "/api/tags"]


def test_one_tags_request_per_check_run(cli: Callable[..., CliRun],
                                        emulator: Callable[..., Any], tmp_path: Path) -> None:
    emu = emulator(models=["llama3.2:latest", "qwen3:8b", "nomic-embed-text"])
    run = cli("check", "--host", emu.url, "--json", env=fake_cli(tmp_path, None))
    assert run.code == 0, run.stdout
    doc = run.json()
    assert [(r.method, r.headers.get("origin")) for r in tags_requests(emu)] == [("GET", None)]
    models_check, auth_check = check_of(doc, "models"), check_of(doc, "auth")
    assert (models_check["status"], models_check["facts"]["count"]) == ("pass", 3)
    assert (auth_check["status"], auth_check["summary"]) == (
        "pass", "GET /api/tags answers 200 — direct")
    call = auth_check["facts"]["call"]
    assert (call["request"], call["status"]) == (f"GET {emu.url}/api/tags", 200)
    assert call["body"].startswith('{"models":[{"name":"llama3.2:latest"')


def test_an_origin_is_another_request(cli: Callable[..., CliRun],
                                      emulator: Callable[..., Any], tmp_path: Path) -> None:
    """auth sends the client's Origin, models does not: two GETs, each as it was (and auth's
    CORS preflight)."""
    emu = emulator()
    run = cli("check", "--host", emu.url, "--origin", "http://localhost:3000", "--json",
              env=fake_cli(tmp_path, None))
    assert run.code == 0, run.stdout
    assert sorted((r.method, r.headers.get("origin") or "") for r in tags_requests(emu)) == [
        ("GET", ""), ("GET", "http://localhost:3000"), ("OPTIONS", "http://localhost:3000")]


def test_models_and_auth_in_one_run_share_the_request(emulator: Callable[..., Any]) -> None:
    from ollama_doctor.runner import run_probes

    emu = emulator(models=["llama3.2:latest", "qwen3:8b"])
    ctx = Context(target=parse_target(emu.url), options=Options(timeout=10))
    results = {r.id: r for r in run_probes(ctx, ["reachability", "models", "auth"])}
    assert [(i, r.status) for i, r in results.items()] == [
        ("reachability", Status.PASS), ("models", Status.PASS), ("auth", Status.PASS)]
    assert results["models"].facts["count"] == 2
    assert len(tags_requests(emu)) == 1


def test_a_second_caller_waits_no_longer_than_its_own_timeout() -> None:
    """The probe that did not make the request gets an error after its own timeout, not
    after the first one's; the server still sees one request."""
    import threading

    from tests.support.trickle import TrickleServer

    with TrickleServer("status", 0.5) as server:
        ctx = Context(target=parse_target(server.url), options=Options(timeout=4))
        url = server.url + "/api/tags"
        first = threading.Thread(target=models.shared_tags, args=(ctx, url, {}), daemon=True)
        first.start()
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        ctx.deadline = ctx.clock() + 0.1  # this caller has only OP_FLOOR (1 s) left
        second = models.shared_tags(ctx, url, {})
        assert first.is_alive()  # the first request is still under way
        assert second.parsed is None and second.reply.status is None
        assert second.reply.error is not None
        assert (second.reply.error.kind, second.reply.error.message) == (
            "read-timeout", "no answer within 1 s (the request another probe made for this one)")
        assert len(server.requests) == 1
        first.join(10)


def test_the_answer_is_shared_at_once_and_parsed_once(emulator: Callable[..., Any]) -> None:
    """Context.tags: a caller that asks for no parse (auth) is not held by another's parse;
    the first caller with a parser parses, every later one gets that same list."""
    import threading

    emu = emulator(models=["llama3.2:latest", "qwen3:8b"])
    ctx = Context(target=parse_target(emu.url), options=Options(timeout=10))
    url = emu.url + "/api/tags"
    release, calls = threading.Event(), []

    def slow_parse(body: bytes) -> list[str]:
        calls.append(len(body))
        release.wait(10)
        return ["parsed"]

    box: dict[str, Any] = {}
    parser = threading.Thread(target=lambda: box.setdefault(
        "first", ctx.tags(url, {}, slow_parse, max_bytes=1 << 20)), daemon=True)
    parser.start()
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    head = ctx.tags(url, {}, None, max_bytes=1 << 20)  # while the parse is held
    assert (head.reply.status, head.parsed, head.size) == (200, None, calls[0])
    assert head.reply.body.startswith(b'{"models":[{"name":"llama3.2:latest"')
    release.set()
    parser.join(10)
    again = ctx.tags(url, {}, slow_parse, max_bytes=1 << 20)
    assert again is box["first"] and again.parsed == ["parsed"]
    assert len(calls) == 1 and len(tags_requests(emu)) == 1


def test_a_list_past_the_byte_cap_is_said_so(emulator: Callable[..., Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator(models=[f"m{i}:latest" for i in range(20)])
    monkeypatch.setattr(models, "STORE_MAX_BYTES", 2000)
    out = models.run(Context(target=parse_target(emu.url)))
    assert (out.status, out.summary) == (
        Status.WARN, f"GET {emu.url}/api/tags answered more than 2,000 bytes (this tool reads "
                     "no more); models unknown — direct")
    assert "models" not in out.facts


def test_the_asked_model_past_the_listed_ones_keeps_its_row(
        emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """facts.models holds the first MAX_LISTED rows, and the asked model's own row after
    them (its size is what the resources probe compares with free memory)."""
    emu = emulator(models=[f"m{i}:latest" for i in range(5)] + ["big:latest;size=7G"])
    monkeypatch.setattr(models, "MAX_LISTED", 3)
    out = models.run(Context(target=parse_target(emu.url), options=Options(model="big")))
    assert out.status is Status.PASS
    assert [m["name"] for m in out.facts["models"]] == [
        "m0:latest", "m1:latest", "m2:latest", "big:latest"]
    assert out.facts["models_truncated"] is True and out.facts["count"] == 6
    assert out.evidence is not None and out.evidence.size_of("big:latest") == 7_000_000_000
