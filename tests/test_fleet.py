"""`check --targets FILE`: many emulated servers at once, one table, the worst exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor import fleet
from tests.conftest import closed_port


def write(tmp_path: Path, text: str, name: str = "targets.txt") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_text_file_with_models_and_comments(tmp_path: Path) -> None:
    path = write(tmp_path, "# fleet\nhttp://127.0.0.1:1 model=llama3.2\n\n127.0.0.1:2  # b\n")
    assert fleet.load_targets(path) == [fleet.FleetTarget("http://127.0.0.1:1", "llama3.2"),
                                        fleet.FleetTarget("127.0.0.1:2", None)]


def test_file_sd_json(tmp_path: Path) -> None:
    groups = [{"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {"model": "qwen"}},
              {"targets": ["http://127.0.0.1:3"], "labels": {"__param_model": "m2"}},
              {"targets": ["http://127.0.0.1:4"]}]
    path = write(tmp_path, json.dumps(groups), "sd.json")
    assert fleet.load_targets(path) == [
        fleet.FleetTarget("127.0.0.1:1", "qwen"), fleet.FleetTarget("127.0.0.1:2", "qwen"),
        fleet.FleetTarget("http://127.0.0.1:3", "m2"), fleet.FleetTarget("http://127.0.0.1:4")]


@pytest.mark.parametrize(("text", "message"), [
    ("http://127.0.0.1:1\nhttp://x:99999\n", "targets.txt:2: invalid target"),
    ("http://127.0.0.1:1 size=3\n", "targets.txt:1: expected 'URL [model=NAME]'"),
    ("# nothing\n", "names no target"),
    ('[{"targets": "127.0.0.1:1"}]', "group 1: expected"),
    ("[{", "not valid JSON"),
])
def test_bad_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(fleet.TargetsError) as info:
        fleet.load_targets(write(tmp_path, text))
    assert message in str(info.value)


def test_cli_table_json_and_worst_exit_code(tmp_path: Path, emulator: Any, cli: Any) -> None:
    healthy = emulator()
    refusing = f"http://127.0.0.1:{closed_port()}"
    path = write(tmp_path, f"{healthy.url} model=llama3.2\n{refusing}\n")

    run = cli("check", "--targets", path, "--parallel", "2")
    assert run.code == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "STATUS", "TOP", "CAUSE", "CODE", "TIME"]
    row = {line.split()[0]: line.split() for line in lines[1:3]}
    assert row[healthy.url][2] == "healthy"
    assert row[refusing][1:3] == ["failing", "server-not-running"]
    assert lines[-1] == "2 targets: 1 healthy, 1 failing"

    out = tmp_path / "fleet.json"
    run = cli("check", "--targets", path, "--json", "-o", str(out))
    reports = json.loads(run.stdout)
    assert run.code == 1
    assert json.loads(out.read_text()) == reports
    assert [r["target"]["url"] for r in reports] == [healthy.url, refusing]
    assert [r["summary"]["status"] for r in reports] == ["healthy", "failing"]
    assert reports[0]["target"]["model"] == "llama3.2"
    # the fleet probe set: no warm-up, no load, no host probes
    assert {c["id"] for c in reports[0]["checks"]} == {
        "proxy", "reachability", "dns", "latency", "models", "auth"}
    assert healthy.loaded == {}, "a fleet check must not load models"
    assert reports[1]["summary"]["top_cause"] == "server-not-running"


def test_cli_all_healthy_exits_zero(tmp_path: Path, emulator: Any, cli: Any) -> None:
    one, two = emulator(), emulator()
    run = cli("check", "--targets", write(tmp_path, f"{one.url}\n{two.url}\n"))
    assert run.code == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "2 targets: 2 healthy"


def test_model_missing_on_one_server(tmp_path: Path, emulator: Any, cli: Any) -> None:
    server = emulator()
    run = cli("check", "--targets", write(tmp_path, f"{server.url} model=nope:7b\n"), "--json")
    (report,) = json.loads(run.stdout)
    assert run.code == 1
    assert report["summary"]["top_cause"] == "model-not-found"


@pytest.mark.parametrize(("args", "message"), [
    (["--targets", "/nonexistent/targets.txt"], "cannot read --targets"),
    (["--targets", "T", "--host", "http://127.0.0.1:1"], "give --host or --targets"),
    (["--targets", "T", "--parallel", "0"], "--parallel must be between 1 and 1024"),
])
def test_cli_bad_input_is_one_line(tmp_path: Path, cli: Any, args: list[str],
                                   message: str) -> None:
    path = write(tmp_path, "http://127.0.0.1:1\n")
    run = cli("check", *[path if a == "T" else a for a in args])
    assert run.code == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr


def test_parallel_checks_run_concurrently(emulator: Any) -> None:
    """Ten servers that each take 0.3 s per answer finish far sooner than one after another."""
    import time

    slow = emulator(latency="300")
    targets = [fleet.FleetTarget(slow.url)] * 10
    started = time.monotonic()
    reports = fleet.check_all(targets, parallel=10, probes=["reachability"], env={})
    elapsed = time.monotonic() - started
    assert [r["summary"]["status"] for r in reports] == ["healthy"] * 10
    serial = sum(r["fleet"]["elapsed_s"] for r in reports)
    assert elapsed < serial / 2, (elapsed, serial)


SPLIT = """
import json, sys
from ollama_doctor import fleet
urls = sys.argv[1:]
targets = [fleet.FleetTarget(u) for u in urls]
workers = fleet._workers(len(targets), 2)
reports = fleet.check_all(targets, parallel=4, probes=["reachability"], env={}, processes=2)
print(json.dumps({"workers": workers, "urls": [r["target"]["url"] for r in reports],
                  "statuses": [r["summary"]["status"] for r in reports]}))
"""


def test_split_across_processes_keeps_the_file_order(emulator: Any) -> None:
    """Run where no other thread exists (a fresh interpreter), so the split really forks."""
    import subprocess
    import sys

    from tests.conftest import clean_environ

    url = emulator().url
    refusing = f"http://127.0.0.1:{closed_port()}"
    urls = [url if i % 3 else refusing for i in range(7)]
    proc = subprocess.run([sys.executable, "-c", SPLIT, *urls], capture_output=True,
                          text=True, timeout=120, env=clean_environ())
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["workers"] == 2
    assert data["urls"] == urls
    assert data["statuses"] == ["healthy" if i % 3 else "failing" for i in range(7)]
