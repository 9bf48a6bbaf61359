"""Record what real client libraries print in each failure situation (the real-client tier).

    python tests/clients/record.py --install            # install the pinned clients (cached)
    python tests/clients/record.py --record             # re-record tests/clients/fixtures/
    python tests/clients/record.py --record --only hang,oom --client curl
    python tests/clients/record.py --newest --record    # newest releases instead of the pins

Needs root (network namespaces). The clients are installed into an isolated cache
(``~/.cache/ollama-doctor/real-clients/<hash of the pins>/{venv,node_modules}``), never the
project's environment: the app's environment is not the doctor's. Each call runs inside the
situation's namespace with a clean environment, is stopped after the situation's bound, and
what it printed (stdout and stderr, interleaved as a terminal shows them) is stored with paths
rewritten to ``/home/user/app`` so that fixtures do not depend on where the cache lives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests.…`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.clients import pins
from tests.clients.apps import CLIENTS, PACKAGE, family, source
from tests.clients.situations import BY_ID, SITUATIONS, Build, Situation

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ollama-doctor" \
    / "real-clients"
APP_DIR = "/home/user/app"
NO_OUTPUT = "(no output: the call was still waiting after {s:g} s)"
STILL_WAITING = "(the call was still waiting after {s:g} s)"


@dataclass(frozen=True)
class Clients:
    """An installed set of clients."""

    root: Path
    versions: dict[str, str]  # manifest client name → version

    @property
    def python(self) -> str:
        return str(self.root / "venv" / "bin" / "python")

    @property
    def node(self) -> str:
        return shutil.which("node") or "/usr/bin/node"


def _pins_hash(py: dict[str, str], node: dict[str, str]) -> str:
    blob = json.dumps({"python": py, "node": node, "py": sys.version_info[:2]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def install(newest: bool = False, quiet: bool = True) -> Clients:
    """Install the pinned (or newest) clients into the cache, once; return where they are."""
    py = {k: "" for k in pins.PYTHON} if newest else dict(pins.PYTHON)
    node = {k: "" for k in pins.NODE} if newest else dict(pins.NODE)
    root = CACHE / ("newest" if newest else _pins_hash(py, node))
    done = root / ".installed"
    if newest and root.exists():
        shutil.rmtree(root)
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        out = subprocess.DEVNULL if quiet else None
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root / "venv")], check=True)
        specs = [f"{k}=={v}" if v else k for k, v in py.items()]
        subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", *specs], check=True, stdout=out)
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed for the Node clients (apt-get install -y npm)")
        (root / "package.json").write_text('{"name": "app", "private": true}\n')
        specs = [f"{k}@{v}" if v else f"{k}@latest" for k, v in node.items()]
        subprocess.run([npm, "install", "--prefix", str(root), "--no-audit", "--no-fund",
                        "--loglevel=error", *specs], check=True, stdout=out)
        done.write_text("ok\n")
    return Clients(root, _versions(root))


def _versions(root: Path) -> dict[str, str]:
    py = subprocess.run(
        [str(root / "venv" / "bin" / "python"), "-c",
         "import importlib.metadata as m, json, sys; "
         "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))", *pins.PYTHON],
        capture_output=True, text=True, check=True)
    pyv: dict[str, str] = json.loads(py.stdout)
    out: dict[str, str] = {}
    for client in CLIENTS:
        kind, name = PACKAGE[client]
        if kind == "pip":
            out[client] = pyv[name]
        elif kind == "npm":
            meta = json.loads((root / "node_modules" / name / "package.json").read_text())
            out[client] = str(meta["version"])
        else:
            first = subprocess.run(["curl", "--version"], capture_output=True, text=True)
            out[client] = first.stdout.split()[1] if first.stdout else "unknown"
    return out


# ------------------------------------------------------------------------------------------

def _normalise(text: str, root: Path, rundir: Path) -> str:
    stdlib = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for path, repl in ((rundir, APP_DIR), (root / "venv", f"{APP_DIR}/.venv"), (root, APP_DIR),
                       (stdlib, f"/usr/lib/{stdlib.name}")):
        text = text.replace(str(path), repl)
    return text


def run_client(clients: Clients, situation: Situation, client: str, build: Build,
               workdir: Path) -> dict[str, Any]:
    """Make the call inside the situation; return the manifest entry (with ``text``)."""
    rundir = Path(tempfile.mkdtemp(prefix=f"{situation.id}-{client}-", dir=workdir))
    literal = situation.base_url(client)
    if client in ("openai-python", "openai-node"):
        literal = situation.call.url or literal
    name, text = source(client, situation.call, literal)
    (rundir / name).write_text(text)
    argv = {".py": [clients.python, name], ".mjs": [clients.node, name]}.get(
        Path(name).suffix, ["sh", name])
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(rundir), "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1", "TERM": "dumb",
           **situation.client_env(client)}
    try:
        done = build.ns.run(argv, timeout=situation.kill_after, env=env, cwd=rundir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            capture_output=False)
        output, code = done.stdout, done.returncode
        outcome = "failed" if code != 0 else "succeeded"
    except subprocess.TimeoutExpired as exc:
        partial = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) \
            else (exc.output or "")
        output = (partial.rstrip("\n") + "\n" + STILL_WAITING.format(s=situation.kill_after)
                  if partial.strip() else NO_OUTPUT.format(s=situation.kill_after)) + "\n"
        code, outcome = None, "hung"
    if outcome == "succeeded" and (re.search(r'"error"\s*:', output)
                                   or (client == "curl" and not _chat_answer(output))):
        # curl exits 0 on a 200 whatever it holds: a streamed {"error": …} line, an HTML
        # page, another service's JSON. What the user sees is not an answer.
        outcome = "failed"
    if client == "curl":
        # curl is typed at a prompt: the terminal shows the command line (and its URL) above
        # what curl printed, and that is what people paste.
        output = f"$ {text.strip()}\n{output}"
    output = _normalise(output, clients.root, rundir)
    return {"situation": situation.id, "client": client, "family": family(client),
            "version": clients.versions[client], "exit_code": code, "outcome": outcome,
            "file": f"{situation.id}/{client}.txt", "expected": situation.expected_cause(client),
            "target": situation.target(client), "env": situation.client_env(client),
            "evidence": evidence(situation, client, output),
            "doctor_args": list(situation.doctor_args_of(client)), "app": text,
            "text": output}


def _chat_answer(output: str) -> bool:
    for line in output.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "message" in doc:
            return True
    return False


LIVE_ONLY = re.compile(r"Failed to connect to Ollama\. Please check|^\(no output: ", re.MULTILINE)


def evidence(situation: Situation, client: str, text: str) -> str:
    """"text" when the printed text itself names the cause; "live" when only a live check can.

    ollama-python (and langchain through it) re-raise every failed connection as the same
    "Failed to connect to Ollama" message, and a call stopped while waiting prints nothing:
    neither can tell one connection failure from another. Otherwise the situation's
    ``names_cause`` words decide (a bare "500 Server Error" does not name a runner crash)."""
    if situation.names_cause is None or LIVE_ONLY.search(text):
        return "live"
    return "text" if re.search(situation.names_cause, text) else "live"


def reclassify(out: Path = FIXTURES) -> None:
    """Recompute every manifest entry's evidence from its stored text (after a rule changed)."""
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["entries"]:
        text = (out / entry["file"]).read_text()
        entry["evidence"] = evidence(BY_ID[entry["situation"]], entry["client"], text)
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def record_situation(clients: Clients, situation: Situation, only: list[str],
                     workdir: Path) -> list[dict[str, Any]]:
    def one(client: str, build: Build) -> dict[str, Any]:
        return run_client(clients, situation, client, build, workdir)

    if situation.fresh_per_client:
        results = []
        for client in only:
            with ExitStack() as stack:
                build = Build(stack, situation)
                situation.setup(build)
                results.append(one(client, build))
        return results
    with ExitStack() as stack:
        build = Build(stack, situation)
        situation.setup(build)
        # Every call side by side: some wait for the whole bound (no client timeout).
        with ThreadPoolExecutor(max_workers=len(only)) as pool:
            return list(pool.map(lambda c: one(c, build), only))


def record(clients: Clients, out: Path, situations: list[Situation], only: list[str],
           jobs: int = 2, log: bool = True) -> list[dict[str, Any]]:
    """Record every (situation, client) into ``out``; merge into ``out/manifest.json``."""
    from tests.support.netns import require_netns

    require_netns()  # once, before threads create namespaces side by side
    out.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    entries: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="odt-rc-apps-", dir=clients.root) as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)

        def do(situation: Situation) -> None:
            got = record_situation(clients, situation, only, workdir)
            with lock:
                for entry in got:
                    path = out / entry["file"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(entry.pop("text"))
                    entries.append(entry)
                    if log:
                        print(f"{situation.id:26} {entry['client']:20} {entry['outcome']:9} "
                              f"exit={entry['exit_code']}", flush=True)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(do, situations))
    manifest_path = out / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"entries": []}
    keep = {(e["situation"], e["client"]): e for e in old["entries"]
            if e["situation"] in BY_ID}
    for entry in entries:
        keep[(entry["situation"], entry["client"])] = entry
    order = {s.id: i for i, s in enumerate(SITUATIONS)}
    ordered = sorted(keep.values(), key=lambda e: (order[e["situation"]],
                                                   CLIENTS.index(e["client"])))
    manifest = {"comment": "Written by tests/clients/record.py; one entry per (situation, "
                           "client). 'text' evidence: the printed text names the cause; "
                           "'live': only a live check can decide.",
                "entries": ordered}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install the clients (cached)")
    parser.add_argument("--record", action="store_true", help="record the fixtures")
    parser.add_argument("--newest", action="store_true",
                        help="use the newest releases instead of the pins")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--only", default="", help="comma-separated situation ids")
    parser.add_argument("--client", default="", help="comma-separated client names")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reclassify", action="store_true",
                        help="only recompute the manifest's evidence from the stored texts")
    args = parser.parse_args(argv)
    if args.reclassify:
        reclassify(args.out)
        return 0
    if not (args.install or args.record):
        args.record = True
    clients = install(newest=args.newest, quiet=False)
    print(f"clients in {clients.root}: " + ", ".join(f"{k} {v}" for k, v in
                                                      clients.versions.items()), flush=True)
    if args.newest:
        pinned = {"pip": pins.PYTHON, "npm": pins.NODE}
        for client, version in clients.versions.items():
            kind, name = PACKAGE[client]
            pin = pinned.get(kind, {}).get(name)
            if pin not in (None, version):
                print(f"newer than the pin: {kind} {name} {version} (pinned {pin})")
    if not args.record:
        return 0
    if os.geteuid() != 0:
        print("recording needs root (network namespaces)", file=sys.stderr)
        return 2
    situations = [BY_ID[s] for s in args.only.split(",")] if args.only else list(SITUATIONS)
    only = [c for c in args.client.split(",") if c] or list(CLIENTS)
    for c in only:
        if c not in CLIENTS:
            raise SystemExit(f"unknown client {c!r}; valid: {', '.join(CLIENTS)}")
    record(clients, args.out, situations, only, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
