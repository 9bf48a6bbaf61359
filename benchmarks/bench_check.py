"""Time ``ollama-doctor`` as a whole process, the way a user waits for it, beside reference tools.

Each scenario is run the same way, in the same run, by three tools, their runs interleaved
round by round so that a change in the machine's load hits them alike:

- ``doctor``: ``ollama-doctor`` (the console script next to this Python, else ``-m``);
- ``stack-guardian``: a stdlib-only Ollama health checker from PyPI, installed by this benchmark
  in a throw-away venv (``--reference-venv DIR`` keeps one to reuse), pointed at the same
  server through a nodes file (``stack-guardian doctor --nodes FILE``);
- ``curl``: one request, ``curl -sS -m 5 URL/api/tags``.

Scenarios: a refused port; a healthy emulator without a model; the same with a loaded model
(the doctor's warm-up included; stack-guardian's ``--ttft`` one-token call); a missing model;
a name that does not resolve (NXDOMAIN, answered by a DNS server inside a network namespace
whose ``resolv.conf`` points at it: needs root and ``ip``, else skipped with the reason);
``explain 429`` and ``--help``. A tool that has no way to do a scenario shows ``n/a``.

For every cell: the median and worst wall time of ``--runs`` runs (process start included, after
one untimed warm-up run), the peak RSS (from GNU ``time`` when installed) and the exit code(s);
then the doctor/reference ratios. Every run is bounded (``--run-timeout``, killed
past it); traffic goes only to loopback or into the benchmark's own namespace.

``--timeline`` also runs the healthy check, with and without a model, once more under a bootstrap
and prints when each probe started and ended (offsets from process start), how long its module
took to import, what it waited for (``needs``/``after`` in ``registry.py``), any wait for a
free worker slot and when its prepare step (local work started with the run) ran — the last
two from the report's own timeline (``started_ms``, ``waited_ms``, ``prepare`` per check).

    python benchmarks/bench_check.py [--runs 7] [--timeout 5] [--timeline]

Targets (issue #13, idle 2-core machine, medians): refused ≤ 0.35 s, healthy without a model
≤ 0.5 s, healthy with a loaded model ≤ 0.7 s, ``explain`` and ``--help`` ≤ 0.2 s, and no slower
than stack-guardian on refused and healthy. Hung and trickling servers: ``bench_bounds.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ollama_doctor.emulator import Emulator, EmulatorConfig  # noqa: E402

REFERENCE_SPEC = "stack-guardian==0.4.0"
MODEL = "llama3.2:latest"
MISSING_MODEL = "no-such-model:latest"
NXDOMAIN_HOST = "od-bench.invalid"
TARGETS = {"refused port": 0.35, "healthy, no model": 0.5, "healthy, loaded model": 0.7,
           "explain 429": 0.2, "--help": 0.2}
TOOLS = ("doctor", "stack-guardian", "curl")


@dataclass
class Run:
    wall: float
    code: int
    rss_mb: float
    cpu: float  # user + system seconds: much less sensitive to the machine's load than wall


@dataclass
class Cell:
    runs: list[Run] = field(default_factory=list)
    note: str = ""  # why there are no runs ("n/a: …")

    @property
    def median(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)


# A command line per tool, or a string saying why the tool cannot do the scenario.
Commands = dict[str, "list[str] | str"]


def clean_env(home: Path) -> dict[str, str]:
    """No proxy or Ollama variables from the caller's shell; a scratch HOME for every tool."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith(("OLLAMA_", "STACK_GUARDIAN_"))}
    env.update({"HOME": str(home), "NO_COLOR": "1", "COLUMNS": "100"})
    return env


def gnu_time() -> str | None:
    """GNU time, which measures its child's peak RSS from a 2 MB process. ``wait4``'s rusage
    of a child forked from this benchmark starts at the benchmark's own RSS (fork, then exec,
    keeps the high-water mark), so it is only an upper bound."""
    path = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if path is None:
        return None
    try:
        probe = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "GNU" in probe.stdout + probe.stderr else None


GNU_TIME = gnu_time()


def run_once(argv: list[str], env: dict[str, str], timeout: float) -> Run:
    """Wall seconds, exit code and peak RSS (MB) of one whole process; killed past ``timeout``
    (with its process group)."""
    with tempfile.NamedTemporaryFile(prefix="od-bench-rss-") as rss_file:
        launch = ([GNU_TIME, "-q", "-f", "%M %U %S", "-o", rss_file.name, *argv] if GNU_TIME
                  else argv)
        started = time.perf_counter()
        proc = subprocess.Popen(launch, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        killer = threading.Timer(timeout, lambda: _kill(proc.pid))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_mb, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        if GNU_TIME:
            fields = Path(rss_file.name).read_text().split()[-3:]
            try:
                rss_mb, cpu = int(fields[0]) / 1024, float(fields[1]) + float(fields[2])
            except (IndexError, ValueError):
                rss_mb = cpu = float("nan")
    return Run(wall, proc.returncode, rss_mb, cpu)


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(pid, signal.SIGKILL)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def doctor_argv() -> list[str]:
    script = Path(sys.executable).parent / "ollama-doctor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ollama_doctor"]


def install_reference(venv: Path, spec: str) -> Path | str:
    """The stack-guardian script in ``venv`` (created and installed when missing), or why not."""
    script = venv / "bin" / "stack-guardian"
    if script.exists():
        return script
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        spec], check=True, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return f"n/a: installing {spec} failed: {detail.strip().splitlines()[-1:]}"
    return script if script.exists() else f"n/a: {spec} installed no stack-guardian script"


class Reference:
    """stack-guardian pointed at one Ollama URL: a nodes file (and a ctx file for a model)."""

    def __init__(self, script: Path | str, work: Path, timeout: float) -> None:
        self.script, self.work, self.timeout = script, work, timeout
        self._n = 0

    def doctor(self, url: str, *, expect_model: str | None = None,
               ttft: bool = False) -> list[str] | str:
        if isinstance(self.script, str):
            return self.script
        self._n += 1
        nodes = self.work / f"nodes-{self._n}.json"
        nodes.write_text(json.dumps({"_options": {"timeout_s": self.timeout},
                                     "bench": {"ollama": [url], "local": True}}))
        argv = [str(self.script), "doctor", "--nodes", str(nodes),
                "--state", str(self.work / f"state-{self._n}.json"),
                "--timeout", str(self.timeout)]
        if expect_model:
            ctx = self.work / f"ctx-{self._n}.json"
            ctx.write_text(json.dumps({"expect": {"bench": {"model": expect_model}}}))
            argv += ["--ctx", str(ctx)]
        if ttft:
            argv.append("--ttft")
        return argv

    def plain(self, *args: str) -> list[str] | str:
        return self.script if isinstance(self.script, str) else [str(self.script), *args]


def curl(url: str) -> list[str] | str:
    path = shutil.which("curl")
    if path is None:
        return "n/a: curl is not installed"
    return [path, "-sS", "-m", "5", url.rstrip("/") + "/api/tags"]


def preload(url: str, model: str, timeout: float = 60.0) -> None:
    """Load ``model`` into the emulator's memory (as a first call would), so it counts as loaded."""
    body = json.dumps({"model": model, "prompt": "", "keep_alive": "30m"}).encode()
    request = urllib.request.Request(url + "/api/generate", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=timeout) as reply:
        reply.read(1 << 20)


@contextmanager
def nxdomain_namespace() -> Iterator[list[str] | str]:
    """The argv prefix that runs a command in a fresh network namespace whose resolver (a DNS
    server inside it, on 127.0.0.1:53) answers NXDOMAIN for every name; or why not."""
    if os.geteuid() != 0:
        yield "skipped: needs root (ip netns)"
        return
    if shutil.which("ip") is None:
        yield "skipped: needs iproute2 (ip)"
        return
    from tests.support.netns import Netns

    ns = Netns()
    try:
        ns.__enter__()
        ns.start_server([sys.executable, "-m", "tests.support.dns_server", "--port", "53"],
                        cwd=str(ROOT))
    except BaseException as exc:  # pytest's Skipped is a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        ns.close()
        yield f"skipped: cannot set up a network namespace: {exc}"
        return
    try:
        yield ns.command([])
    finally:
        ns.close()


def scenarios(stack: ExitStack, ref: Reference, timeout: float) -> list[tuple[str, Commands]]:
    doctor = doctor_argv()
    t = ["--timeout", f"{timeout:g}"]
    healthy = Emulator(EmulatorConfig())
    stack.callback(healthy.stop)
    healthy.start()
    loaded = Emulator(EmulatorConfig())
    stack.callback(loaded.stop)
    loaded.start()
    preload(loaded.url, MODEL)
    refused = f"http://127.0.0.1:{closed_port()}"
    nx_url = f"http://{NXDOMAIN_HOST}:11434"
    prefix = stack.enter_context(nxdomain_namespace())

    def in_ns(cmd: list[str] | str) -> list[str] | str:
        if isinstance(prefix, str):
            return prefix
        return cmd if isinstance(cmd, str) else [*prefix, *cmd]

    return [
        ("refused port", {"doctor": [*doctor, "check", "--host", refused, *t],
                          "stack-guardian": ref.doctor(refused), "curl": curl(refused)}),
        ("healthy, no model", {"doctor": [*doctor, "check", "--host", healthy.url, *t],
                               "stack-guardian": ref.doctor(healthy.url),
                               "curl": curl(healthy.url)}),
        ("healthy, loaded model", {
            "doctor": [*doctor, "check", "--host", loaded.url, "-m", MODEL, *t],
            "stack-guardian": ref.doctor(loaded.url, expect_model=MODEL, ttft=True),
            "curl": curl(loaded.url)}),
        ("model missing", {
            "doctor": [*doctor, "check", "--host", healthy.url, "-m", MISSING_MODEL, *t],
            # stack-guardian's nearest rule: an expected model that is not loaded
            "stack-guardian": ref.doctor(healthy.url, expect_model=MISSING_MODEL),
            "curl": curl(healthy.url)}),
        ("DNS NXDOMAIN", {"doctor": in_ns([*doctor, "check", "--host", nx_url, *t]),
                          "stack-guardian": in_ns(ref.doctor(nx_url)),
                          "curl": in_ns(curl(nx_url))}),
        ("explain 429", {"doctor": [*doctor, "explain", "429"],
                         "stack-guardian": "n/a: no offline lookup", "curl": "n/a"}),
        ("--help", {"doctor": [*doctor, "--help"], "stack-guardian": ref.plain("--help"),
                    "curl": "n/a"}),
    ]


def measure(commands: Commands, runs: int, env: dict[str, str],
            run_timeout: float) -> dict[str, Cell]:
    cells = {tool: Cell(note=cmd) if isinstance(cmd, str) else Cell()
             for tool, cmd in commands.items()}
    live = {tool: cmd for tool, cmd in commands.items() if not isinstance(cmd, str)}
    for cmd in live.values():  # warm-up: page cache, .pyc files, the server's keep-alive state
        run_once(cmd, env, run_timeout)
    for _ in range(runs):  # interleaved, so a change of load hits every tool alike
        for tool, cmd in live.items():
            cells[tool].runs.append(run_once(cmd, env, run_timeout))
    return cells


def fmt_cell(cell: Cell) -> str:
    if not cell.runs:
        return f"{cell.note[:33]:<33}"
    codes = "/".join(str(c) for c in sorted({r.code for r in cell.runs}))
    return (f"{cell.median:6.3f} {max(r.wall for r in cell.runs):6.3f} {cell.cpu:5.2f} "
            f"{max(r.rss_mb for r in cell.runs):4.0f} {codes:>3}")


def ratio(a: Cell, b: Cell) -> str:
    if not a.runs or not b.runs:
        return "   -"
    r = a.median / b.median
    return f"{r:4.1f}" if r < 100 else f"{r:4.0f}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


# ---------------------------------------------------------------------------------------------
# timeline of one check

TIMELINE_BOOT = r"""
import atexit, json, os, runpy, sys, time
T0 = float(os.environ["OD_BENCH_T0"])
ev = {"boot": time.monotonic() - T0, "probes": {}}
def now():
    return time.monotonic() - T0
from ollama_doctor import registry, runner
ev["runner imported"] = now()
from ollama_doctor import cli, cli_options
ev["cli imported"] = now()
_ctx = cli_options.build_context
def context(*a, **k):
    ev["options parsed"] = now()
    try:
        return _ctx(*a, **k)
    finally:
        ev["context built"] = now()
cli_options.build_context = context
_load = registry.ProbeSpec.load
def load(self):
    s = now(); f = _load(self); ev["probes"].setdefault(self.id, {})["import"] = now() - s
    return f
registry.ProbeSpec.load = load
_one = runner._run_one
def one(spec, ctx):
    p = ev["probes"].setdefault(spec.id, {}); p["start"] = now()
    try:
        return _one(spec, ctx)
    finally:
        p["end"] = now()
runner._run_one = one
_rp = runner.run_probes
def rp(*a, **k):
    ev["run_start"] = now()
    try:
        return _rp(*a, **k)
    finally:
        ev["run_end"] = now()
runner.run_probes = rp
def dump():
    ev["exit"] = now()
    with open(os.environ["OD_BENCH_TIMELINE"], "w") as out:
        json.dump(ev, out)
atexit.register(dump)
_x = os._exit
def _exit(code):
    dump(); _x(code)
os._exit = _exit
sys.argv = ["ollama-doctor", *sys.argv[1:]]
runpy.run_module("ollama_doctor", run_name="__main__", alter_sys=True)
"""


def timeline(url: str, model: str | None, env: dict[str, str], timeout: float,
             run_timeout: float, work: Path) -> None:
    from ollama_doctor.registry import BY_ID

    out = work / "timeline.json"
    out.unlink(missing_ok=True)
    env = dict(env, OD_BENCH_TIMELINE=str(out), OD_BENCH_T0=repr(time.monotonic()))
    argv = [sys.executable, "-c", TIMELINE_BOOT, "check", "--host", url,
            *(["-m", model] if model else []), "--timeout", f"{timeout:g}", "--json"]
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=run_timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"timeline: the run took more than {run_timeout:g} s")
        return
    wall = time.perf_counter() - started
    if not out.exists():
        print(f"timeline: no data (exit {proc.returncode}): {proc.stderr[-500:]}")
        return
    ev = json.loads(out.read_text())
    probes: dict[str, dict[str, float]] = ev["probes"]
    ms = 1000.0
    what = f"check -m {model}" if model else "check"
    print(f"\ntimeline of `{what}` on a healthy emulator (ms from process start; "
          f"load {load()}; wall {wall * ms:.0f}, exit {proc.returncode})")
    reported: dict[str, dict[str, object]] = {}
    try:
        doc = json.loads(proc.stdout)
        print(f"  {doc['summary']['headline']}; not passed: " + ", ".join(
            f"{c['id']} {c['status']}" for c in doc["checks"] if c["status"] != "pass"))
        reported = {c["id"]: c for c in doc["checks"]}
    except (ValueError, KeyError, TypeError):
        print(f"  (no JSON report: {proc.stderr[-300:]!r})")
    marks = [("interpreter up", ev["boot"])] + [
        (k, ev[k]) for k in ("runner imported", "cli imported", "options parsed", "context built",
                             "run_start", "run_end", "exit") if k in ev]
    print("  " + ", ".join(f"{k} {v * ms:.0f}" for k, v in marks))
    print(f"  {'probe':<13}{'start':>6}{'end':>6}{'run':>6}{'import':>7}  waited for (ready at) "
          f"/ slot wait / prepare step")
    base = ev.get("run_start", 0.0) * ms  # the report's times count from the run's start
    for pid, p in sorted(probes.items(), key=lambda kv: kv[1].get("start", 1e9)):
        if "start" not in p:
            continue
        spec = BY_ID.get(pid)
        deps = [d for d in (*(spec.needs if spec else ()), *(spec.after if spec else ()))
                if d in probes and "end" in probes[d]]
        ready = max([probes[d]["end"] for d in deps], default=ev.get("run_start", 0.0))
        last = max(deps, key=lambda d: probes[d]["end"]) if deps else "-"
        check = reported.get(pid, {})
        waited = check.get("waited_ms")
        slot = float(waited) if isinstance(waited, (int, float)) else (p["start"] - ready) * ms
        prepare = check.get("prepare")
        prepared = (f" / prepared {base + prepare['started_ms']:.0f}-"
                    f"{base + prepare['finished_ms']:.0f}" if isinstance(prepare, dict) else "")
        print(f"  {pid:<13}{p['start'] * ms:6.0f}{p['end'] * ms:6.0f}"
              f"{(p['end'] - p['start']) * ms:6.0f}{p.get('import', 0) * ms:7.0f}  "
              f"{last} ({ready * ms:.0f})" + (f" / {slot:.0f}" if slot > 5 else "")
              + prepared)


# ---------------------------------------------------------------------------------------------


def compile_bytecode() -> str:
    """Compile the package's bytecode first, as ``pip install`` does for a wheel. An editable
    install under ``PYTHONDONTWRITEBYTECODE=1`` (this machine, CI) has none and writes none,
    and every run would compile the package from source (~0.35 s): a cost users never pay."""
    import compileall

    compileall.compile_dir(str(ROOT / "ollama_doctor"), quiet=1)
    return ("bytecode compiled (PYTHONDONTWRITEBYTECODE is set)"
            if os.environ.get("PYTHONDONTWRITEBYTECODE") else "bytecode compiled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="--timeout for every tool (seconds per network operation)")
    parser.add_argument("--run-timeout", type=float, default=30.0,
                        help="hard limit of one run; the process is killed past it")
    parser.add_argument("--reference-venv", type=Path, default=None,
                        help="venv for stack-guardian, kept (default: a temporary one)")
    parser.add_argument("--reference-spec", default=REFERENCE_SPEC)
    parser.add_argument("--only", action="append", default=[],
                        help="run only scenarios whose name contains this (repeatable)")
    parser.add_argument("--timeline", action="store_true",
                        help="also print probe timelines of a healthy check (with, without -m)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be between 1 and 50")

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="od-bench-")))
        venv = args.reference_venv or work / "reference-venv"
        script = install_reference(venv, args.reference_spec)
        bytecode = compile_bytecode()
        ref = Reference(script, work, args.timeout)
        env = clean_env(work)
        print(f"machine: {machine()}")
        print(f"load average at start: {load()}; {args.runs} runs per cell after 1 warm-up; "
              f"reference: {args.reference_spec}; peak RSS from "
              + ("GNU time" if GNU_TIME else "wait4 (an upper bound: includes this process)")
              + f"; {bytecode}")
        print("wall: median and worst s; cpu: median user+sys s; MB: peak RSS; exit codes; "
              "ratio: doctor's median wall / the tool's")
        print(f"{'':<22} {'doctor':^33}  {'stack-guardian':^33}  {'curl':^33}  ratio doctor/")
        print(f"{'scenario':<22} " + "  ".join([" median  worst   cpu   MB ext"] * 3)
              + "    sg  curl  target    load")
        plan = scenarios(stack, ref, args.timeout)
        for name, commands in plan:
            if args.only and not any(o in name for o in args.only):
                continue
            cells = measure(commands, args.runs, env, args.run_timeout)
            d, sg, cu = (cells[t] for t in TOOLS)
            target = TARGETS.get(name)
            mark = ""
            if target is not None and d.runs:
                mark = f"{target:4.2f} {'ok' if d.median <= target else 'SLOW'}"
            print(f"{name:<22} {fmt_cell(d)}  {fmt_cell(sg)}  {fmt_cell(cu)}  "
                  f"{ratio(d, sg)} {ratio(d, cu):>5}  {mark:<9} {os.getloadavg()[0]:5.2f}",
                  flush=True)
        if args.timeline:
            url = next(cmd[cmd.index("--host") + 1] for n, c in plan
                       if n == "healthy, loaded model"
                       for cmd in [c["doctor"]] if not isinstance(cmd, str))
            timeline(url, MODEL, env, args.timeout, args.run_timeout, work)
            timeline(url, None, env, args.timeout, args.run_timeout, work)
        print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
