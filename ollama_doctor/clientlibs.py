"""Which Ollama client libraries an app uses, at which versions, and their known pitfalls.

- ``from_python(interpreter)`` runs the app's own interpreter (not the doctor's) with a tiny
  ``importlib.metadata`` script: no shell, a time limit and an output limit. It lists
  ``PYTHON_PACKAGES``.
- ``from_project(directory)`` reads what a project pins: ``requirements*.txt``,
  ``pyproject.toml`` (PEP 621, Poetry and dependency groups), ``uv.lock``, ``poetry.lock``,
  ``package.json`` and ``package-lock.json`` (``NPM_PACKAGES``). TOML is read with ``tomllib``
  (``tomli`` on Python 3.10).
- ``pitfalls(installed)`` turns each library and version into findings: the rule, the versions
  it applies to, and the upgrade or setting that fixes it. Every package maps to one row of
  ``clients.CLIENTS`` (``ClientFamily.packages``), and the rules are that row's ``pitfalls``:
  one table, which ``ollama-doctor probes`` shows too.

Cause ids emitted: ``server-unresponsive`` (no default timeout), ``proxy-captures-local``,
``proxy-unsupported``, ``wrong-port-scheme``, ``client-parsing-differs``, ``wrong-base-path``,
``ipv6-localhost``, ``slow-model-load``, ``ollama-outdated``, ``bad-gateway``,
``auth-required``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_doctor.clients import BY_PACKAGE, ClientFamily
from ollama_doctor.result import Confidence, Finding, FixStep

PYTHON_PACKAGES = ("ollama", "openai", "langchain-ollama", "llama-index-llms-ollama", "litellm")
NPM_PACKAGES = ("ollama", "openai", "@langchain/ollama", "ollama-ai-provider")
# The clients.CLIENTS row each package installs (every package above has one).
CLIENT_OF: dict[tuple[str, str], str] = {
    package: family.name for package, family in BY_PACKAGE.items()}
TIMEOUT_S = 10.0
MAX_OUTPUT = 64 * 1024
MAX_FILE = 4 * 1024 * 1024

# Runs inside the app's interpreter: standard library only, any Python 3.8+.
_SCRIPT = """
import json, sys
try:
    from importlib import metadata
except ImportError:
    print(json.dumps({"error": "no importlib.metadata (Python < 3.8)"})); sys.exit(0)
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps({"doctor": 1, "python": sys.version.split()[0], "prefix": sys.prefix,
                  "packages": out}))
"""


class ClientLibError(Exception):
    """Input the detector cannot use: one clear line for the user."""


@dataclass(frozen=True)
class Installed:
    ecosystem: str  # "pypi" | "npm"
    name: str  # normalised distribution name
    version: str | None  # exact version when known (installed or locked)
    spec: str  # what the source says ("==0.4.7", "^0.5.0", "installed")
    source: str  # where it was found: a file name, or "python <path>"
    client: str | None  # the clients.CLIENTS row, when there is one

    def to_dict(self) -> dict[str, Any]:
        return {"ecosystem": self.ecosystem, "name": self.name, "version": self.version,
                "spec": self.spec, "source": self.source, "client": self.client}


def normalise(name: str) -> str:
    """PEP 503 name (``Langchain_Ollama`` → ``langchain-ollama``); npm names keep their case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(ecosystem: str, name: str, version: str | None, spec: str,
               source: str) -> Installed:
    key = normalise(name) if ecosystem == "pypi" else name
    return Installed(ecosystem, key, version, spec, source, CLIENT_OF.get((ecosystem, key)))


# ---- a Python environment ---------------------------------------------------------------------


def _bounded_run(argv: list[str], env: Mapping[str, str], timeout: float,
                 limit: int) -> tuple[int | None, bytes, bytes, str | None]:
    """Run ``argv`` (no shell); return (code, stdout, stderr, problem) with bounded output."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env), close_fds=True)
    except (OSError, ValueError) as exc:
        return None, b"", b"", f"cannot run it: {exc.strerror or exc}" if isinstance(
            exc, OSError) else f"cannot run it: {exc}"
    buffers: dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}
    over = threading.Event()

    def pump(stream: Any, key: str) -> None:
        while True:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
            if not chunk:
                return
            buf = buffers[key]
            if len(buf) < limit:
                buf += chunk[: limit - len(buf)]
            if len(buf) >= limit:
                over.set()
                return

    threads = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    problem: str | None = None
    while proc.poll() is None:
        if over.is_set():
            problem = f"it printed more than {limit} bytes"
            break
        if time.monotonic() >= deadline:
            problem = f"it did not finish within {timeout:g} s"
            break
        time.sleep(0.02)
    if problem is not None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):  # a process that survives SIGKILL
        proc.wait(timeout=5)
    for thread in threads:
        thread.join(timeout=1)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode, bytes(buffers["out"]), bytes(buffers["err"]), problem


def from_python(interpreter: str | os.PathLike[str], *, timeout: float = TIMEOUT_S,
                env: Mapping[str, str] | None = None) -> list[Installed]:
    """The client libraries installed for ``interpreter`` (the app's Python).

    Raises ``ClientLibError`` with one line when it is not a Python interpreter, hangs, or
    prints too much.
    """
    path = Path(interpreter)
    label = str(interpreter)
    if not path.exists():
        raise ClientLibError(f"{label}: no such file")
    if path.is_dir():
        raise ClientLibError(f"{label}: is a directory, not a Python interpreter "
                             "(give e.g. .venv/bin/python)")
    if not os.access(path, os.X_OK):
        raise ClientLibError(f"{label}: not executable")
    base = dict(os.environ if env is None else env)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT"):
        base.pop(name, None)  # the doctor's own settings must not leak into the app's Python
    code, out, err, problem = _bounded_run([str(path), "-c", _SCRIPT, *PYTHON_PACKAGES], base,
                                           timeout, MAX_OUTPUT)
    if problem is not None:
        raise ClientLibError(f"{label}: not usable as a Python interpreter: {problem}")
    last = (err.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:200]
    if code != 0:
        raise ClientLibError(f"{label}: exited with status {code}"
                             + (f": {last}" if last else "") + " (is it a Python interpreter?)")
    try:
        data = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        data = None
    if not isinstance(data, dict) or data.get("doctor") != 1:
        if isinstance(data, dict) and "error" in data:
            raise ClientLibError(f"{label}: {data['error']}")
        raise ClientLibError(f"{label}: not a Python interpreter (unexpected output)")
    source = f"python {label}"
    packages = data.get("packages") or {}
    return [_installed("pypi", name, str(packages[name]), "installed", source)
            for name in PYTHON_PACKAGES if name in packages]


# ---- a project folder -------------------------------------------------------------------------


_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE:
        raise ClientLibError(f"{path}: larger than {MAX_FILE // (1024 * 1024)} MiB")
    return path.read_text(encoding="utf-8", errors="replace")


def _pep508(requirement: str, source: str) -> Installed | None:
    text = requirement.split(";")[0].split("#")[0].strip()
    m = _REQ.match(text)
    if not m:
        return None
    name, spec = normalise(m.group(1)), m.group(3).strip().replace(" ", "")
    if name not in PYTHON_PACKAGES:
        return None
    exact = re.fullmatch(r"===?([0-9][^,]*)", spec)
    return _installed("pypi", name, exact.group(1) if exact else None, spec or "any", source)


def _requirements(path: Path) -> list[Installed]:
    out = []
    for line in _read(path).splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-", "git+", "http://", "https://")):
            continue
        found = _pep508(line, path.name)
        if found:
            out.append(found)
    return out


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise ClientLibError(f"{path.name}: not valid TOML: {exc}") from None
    return data


def _pyproject(path: Path) -> list[Installed]:
    data = _toml(path)
    out: list[Installed] = []
    project = data.get("project") or {}
    requirements: list[Any] = list(project.get("dependencies") or [])
    for group in (project.get("optional-dependencies") or {}).values():
        requirements += list(group or [])
    for group in (data.get("dependency-groups") or {}).values():
        requirements += [r for r in group or [] if isinstance(r, str)]
    for req in requirements:
        if isinstance(req, str):
            found = _pep508(req, path.name)
            if found:
                out.append(found)
    poetry = (data.get("tool") or {}).get("poetry") or {}
    tables = [poetry.get("dependencies") or {}, poetry.get("dev-dependencies") or {}]
    tables += [(g or {}).get("dependencies") or {} for g in (poetry.get("group") or {}).values()]
    for table in tables:
        for name, value in table.items():
            key = normalise(name)
            if key not in PYTHON_PACKAGES:
                continue
            spec = value if isinstance(value, str) else str((value or {}).get("version", "any"))
            exact = re.fullmatch(r"=?=?([0-9][0-9A-Za-z.+-]*)", spec)
            out.append(_installed("pypi", key, exact.group(1) if exact else None, spec,
                                  path.name))
    return out


def _lock(path: Path) -> list[Installed]:
    """``uv.lock`` and ``poetry.lock``: ``[[package]]`` tables with exact versions."""
    out = []
    for package in _toml(path).get("package") or []:
        if not isinstance(package, dict):
            continue
        name = normalise(str(package.get("name", "")))
        version = package.get("version")
        if name in PYTHON_PACKAGES and isinstance(version, str):
            out.append(_installed("pypi", name, version, f"=={version}", path.name))
    return out


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read(path))
    except ValueError as exc:
        raise ClientLibError(f"{path.name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ClientLibError(f"{path.name}: not a JSON object")
    return data


def _package_json(path: Path) -> list[Installed]:
    data = _json(path)
    out = []
    for section in ("dependencies", "devDependencies", "peerDependencies",
                    "optionalDependencies"):
        for name, spec in (data.get(section) or {}).items():
            if name in NPM_PACKAGES and isinstance(spec, str):
                exact = re.fullmatch(r"=?v?([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*)", spec)
                out.append(_installed("npm", name, exact.group(1) if exact else None, spec,
                                      path.name))
    return out


def _package_lock(path: Path) -> list[Installed]:
    data = _json(path)
    out = []
    packages = data.get("packages")
    if isinstance(packages, dict):  # lockfileVersion 2 and 3
        for key, entry in packages.items():
            name = key.rpartition("node_modules/")[2] if "node_modules/" in key else ""
            top_level = key == f"node_modules/{name}"
            if name in NPM_PACKAGES and top_level and isinstance(entry, dict):
                version = entry.get("version")
                if isinstance(version, str):
                    out.append(_installed("npm", name, version, version, path.name))
        return out
    for name, entry in (data.get("dependencies") or {}).items():  # lockfileVersion 1
        if name in NPM_PACKAGES and isinstance(entry, dict) and isinstance(
                entry.get("version"), str):
            out.append(_installed("npm", name, entry["version"], entry["version"], path.name))
    return out


def from_project(directory: str | os.PathLike[str]) -> list[Installed]:
    """The client libraries a project folder pins, from every file kind it has."""
    root = Path(directory)
    if not root.exists():
        raise ClientLibError(f"{directory}: no such directory")
    if not root.is_dir():
        raise ClientLibError(f"{directory}: not a directory")
    out: list[Installed] = []
    for path in sorted(root.glob("requirements*.txt")):
        out += _requirements(path)
    readers = (("pyproject.toml", _pyproject), ("uv.lock", _lock), ("poetry.lock", _lock),
               ("package.json", _package_json), ("package-lock.json", _package_lock))
    for name, reader in readers:
        path = root / name
        if path.is_file():
            out += reader(path)
    return out


# ---- pitfalls ---------------------------------------------------------------------------------


def version_key(version: str) -> tuple[int, ...]:
    """A comparable key from the leading numbers of a version (``0.4.7rc1`` → (0, 4, 7))."""
    nums = []
    for part in re.split(r"[.+-]", version.lstrip("v=^~<>! ")):
        m = re.match(r"\d+", part)
        if not m:
            break
        nums.append(int(m.group(0)))
    return tuple(nums) or (0,)


def spec_floor(spec: str) -> str | None:
    """The lowest version a range allows (``^0.5.0``, ``>=0.3``, ``~=0.4.1`` → its number)."""
    m = re.search(r"(?:^|[\s,])(?:\^|~=?|>=|==|=)?\s*v?([0-9]+(?:\.[0-9]+)*)", spec)
    return m.group(1) if m and not spec.strip().startswith("<") else None


def in_range(version: str, range_text: str) -> bool:
    """``range_text`` is comma-separated ``<X``, ``<=X``, ``>=X``, ``>X``; empty = all."""
    key = version_key(version)
    for clause in (c.strip() for c in range_text.split(",") if c.strip()):
        m = re.fullmatch(r"(<=|>=|<|>|==)\s*([0-9][0-9.]*)", clause)
        if not m:
            raise ValueError(f"bad version range {clause!r}")
        op, bound = m.group(1), version_key(m.group(2))
        width = max(len(key), len(bound))
        a, b = key + (0,) * (width - len(key)), bound + (0,) * (width - len(bound))
        ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b}[op]
        if not ok:
            return False
    return True


def pitfalls(installed: Iterable[Installed]) -> list[Finding]:
    """Findings for every library whose version a rule of its ``clients.CLIENTS`` row applies
    to. Pure."""
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for lib in installed:
        version = lib.version or spec_floor(lib.spec)
        exact = lib.version is not None
        family = BY_PACKAGE.get((lib.ecosystem, lib.name))
        for rule in family.pitfalls if family is not None else ():
            if rule.versions and (version is None or not in_range(version, rule.versions)):
                continue
            if (rule.id, lib.source) in seen:
                continue
            seen.add((rule.id, lib.source))
            findings.append(Finding(
                cause=rule.cause, severity=rule.severity,
                message=f"{lib.name} {lib.version or lib.spec} ({lib.source}): {rule.message}",
                evidence={"rule": rule.id, "library": lib.to_dict(),
                          "applies_to": rule.versions or "all versions",
                          "client": lib.client, "source": rule.source},
                fix=_fix_steps(rule.fix, rule.commands, family),
                confidence=Confidence.HIGH if exact or not rule.versions else Confidence.MEDIUM))
    return findings


def _fix_steps(text: str, commands: tuple[str, ...],
               family: ClientFamily | None) -> list[FixStep]:
    """A pitfall's fix with each line built by ``remedies`` as what it is — a shell line (an
    install, an ``export``) or code in the client's language — one step per kind, in order, so
    a step's lines all paste into one place: the fix's text on the first, then "In the shell:"
    or "In your code:"."""
    from ollama_doctor import remedies as R

    language = family.language if family is not None else "shell"
    groups: list[list[R.Command]] = []
    for line in (R.client_line(line, language) for line in commands):
        if groups and groups[-1][0].kind == line.kind:
            groups[-1].append(line)
        else:
            groups.append([line])
    if not groups:
        return [R.step(text)]
    return [R.step(text if n == 0 else (
                "In the shell:" if group[0].kind is R.Kind.SHELL else "In your code:"), *group)
            for n, group in enumerate(groups)]


def as_text(libraries: list[Installed], findings: list[Finding]) -> str:
    """Plain text for ``check --python/--project`` (no colour, no rich)."""
    if not libraries:
        return "No Ollama client library found (" + ", ".join(PYTHON_PACKAGES) + "; npm " + \
            ", ".join(NPM_PACKAGES) + ")."
    lines = ["Client libraries:"]
    lines += [f"  {lib.name} {lib.version or lib.spec} ({lib.source})" for lib in libraries]
    for finding in findings:
        lines.append(f"  ! {finding.message}")
        for step in finding.fix:
            lines.append(f"      Fix: {step.text}")
            lines += [f"        {command}" for command in step.commands]
    return "\n".join(lines)


@dataclass
class Inventory:
    """Everything found, for the report's facts."""

    libraries: list[Installed] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"libraries": [lib.to_dict() for lib in self.libraries]}
