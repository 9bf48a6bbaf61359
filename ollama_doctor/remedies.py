"""Every command the doctor suggests is built here: one spelling per remedy, one kind per line.

A fix step shows commands; this module is where they come from. Each command is a
:class:`Command` — a ``str`` (the JSON report writes it as a plain string) that also knows its
:class:`Kind`, so the renderers can show a ``$`` prompt only for shell lines and tag Markdown
blocks with the right language. ``tests/test_remedies.py`` walks the catalogue and a run of
every scenario and checks that each command is a :class:`Command` (that is, was built here),
that shell lines pass ``bash -n``, Python lines ``compile``, JSON lines a JSON parser, and runs
the shell lines that can run on the test machine.

Rules every builder follows (issue 12, "Remedies that work when pasted"):

- placeholders are upper-case words the user cannot mistake for a value (``YOUR_TOKEN``,
  ``MODEL``, ``CONTAINER``), never ``<token>`` (a shell redirection) or a literal ``…``;
- values are quoted for POSIX shells and zsh (``OLLAMA_ORIGINS='chrome-extension://*'``:
  zsh fails on an unquoted glob that matches nothing);
- a secret's value is never written, only :data:`SECRET_PLACEHOLDER`.

Evidence sentences stay where the finding is made; only commands live here.
"""

from __future__ import annotations

import json as _json
import shlex
from enum import Enum
from typing import TYPE_CHECKING, Any

from ollama_doctor.result import Finding, FixStep, Severity

if TYPE_CHECKING:
    from ollama_doctor.local import Launcher


class Kind(str, Enum):
    """What a command line is, so it is shown (and pasted) as what it is."""

    SHELL = "shell"            # a POSIX shell / zsh command line
    PYTHON = "python"          # a Python statement or expression
    JAVASCRIPT = "javascript"  # a JavaScript/TypeScript statement
    NGINX = "nginx"            # an nginx directive
    JSON = "json"              # a JSON fragment for a request body
    ENV = "env"                # a NAME=value line for a launcher's environment (.env, compose)
    SYSTEMD = "systemd"        # a line for a systemd unit file
    CONFIG = "config"          # a line of another tool's configuration (squid, compose, k8s)


class Command(str):
    """One command line, built by this module. A ``str``, plus its :class:`Kind`."""

    kind: Kind

    def __new__(cls, text: str, kind: Kind = Kind.SHELL) -> Command:
        made = super().__new__(cls, text)
        made.kind = kind
        return made


SECRET_PLACEHOLDER = "YOUR_TOKEN"
DEFAULT_PORT = 11434
LOOPBACK_NO_PROXY = "localhost,127.0.0.1,::1"


def q(value: str) -> str:
    """``value`` quoted for POSIX shells and zsh; bare when nothing needs quoting."""
    return shlex.quote(value)


def sq(value: str) -> str:
    """``value`` always in single quotes (a list of hosts reads as one word)."""
    return "'" + value.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------------------------------
# kinds: the one door for a literal line of each kind


def sh(text: str) -> Command:
    """A shell command line, written by a builder or by a probe for a one-off check."""
    return Command(text, Kind.SHELL)


def python(text: str) -> Command:
    return Command(text, Kind.PYTHON)


def javascript(text: str) -> Command:
    return Command(text, Kind.JAVASCRIPT)


def nginx(text: str) -> Command:
    return Command(text, Kind.NGINX)


def json_line(text: str) -> Command:
    """A JSON fragment (``"options": {"num_ctx": 8192}``); it parses once wrapped in braces."""
    return Command(text, Kind.JSON)


def env_line(name: str, value: str) -> Command:
    """``NAME=value`` for an environment file or a launcher's variable list."""
    return Command(f"{name}={value}", Kind.ENV)


def systemd(text: str) -> Command:
    return Command(text, Kind.SYSTEMD)


def config(text: str) -> Command:
    return Command(text, Kind.CONFIG)


# How plain text introduces a line of each kind: a ``$`` prompt only for a shell line (the
# labels render.py shows for the others).
KIND_LABEL = {"python": "python", "javascript": "js", "nginx": "nginx", "json": "json",
              "systemd": "unit", "env": "env", "config": "config"}


def prompt(kind: str) -> str:
    """``"$ "`` for a shell line (or a step of unknown kind), else ``"env: "``, ``"python: "``…"""
    return "$ " if kind in ("", "shell", "text") else f"{KIND_LABEL.get(kind, kind)}: "


def step(text: str, *commands: Command) -> FixStep:
    """A fix step; its kind is its commands' kind (they share one)."""
    return FixStep(text, tuple(commands))


# ---------------------------------------------------------------------------------------------
# the server's log, the client's address, a variable in a shell


def journal(unit: str = "ollama", lines: int = 50) -> Command:
    """The server's recent log when it runs as a systemd service."""
    return sh(f"journalctl -u {q(unit)} -n {lines}")


def service_status(unit: str = "ollama") -> Command:
    return sh(f"systemctl status {q(unit)}")


def export(name: str, value: str) -> Command:
    """``export NAME=value`` for the user's shell (a secret shows only the placeholder)."""
    return sh(f"export {name}={q(value)}")


def export_host(url: str) -> Command:
    """Point every Ollama client started from this shell at ``url``."""
    return export("OLLAMA_HOST", url)


def export_both(name: str, value: str) -> Command:
    """``export NAME=value name=value``: tools read one spelling or the other first."""
    return sh(f"export {name.upper()}={sq(value)} {name.lower()}={sq(value)}")


def unset(*names: str) -> Command:
    return sh("unset " + " ".join(names))


def serve_with(name: str, value: str, *, then: str = "ollama serve") -> Command:
    """Start the server by hand with ``name=value`` in its environment."""
    return sh(f"{name}={q(value)} {then}")


def with_host(url: str, command: str) -> Command:
    """Run one ``ollama`` CLI command against ``url``."""
    return sh(f"OLLAMA_HOST={q(url)} {command}")


def getent(host: str) -> Command:
    """What this machine's resolver (NSS: /etc/hosts, DNS, mDNS) answers for ``host``."""
    return sh(f"getent ahosts {q(host)}")


def listening_on(port: int = DEFAULT_PORT) -> Command:
    """Which process listens on ``port`` (``ss`` from iproute2; root shows the process)."""
    return sh(f"sudo ss -ltnp 'sport = :{port}'")


def curl(url: str, *, method: str = "GET", body: object | None = None,
         headers: tuple[str, ...] = (), extra: str = "", note: str = "") -> Command:
    """A curl call; ``body`` (JSON) makes it a POST unless ``method`` says otherwise.

    ``note`` is a trailing shell comment saying what it should print.
    """
    parts = ["curl"]
    if extra:
        parts.append(extra)
    if method != "GET" and not (method == "POST" and body is not None):
        parts.append(f"-X {method}")
    parts.extend(f"-H {q(h)}" for h in headers)
    parts.append(q(url))
    if body is not None:
        parts.append(f"-d {q(_json.dumps(body))}")
    if note:
        parts.append(f"  # {note}")
    return sh(" ".join(parts))


def unresponsive_fix(port: int = DEFAULT_PORT) -> list[FixStep]:
    """``server-unresponsive``: restart, read the log, and see what owns *this* port."""
    return [step("Restart the server and read its log; check what owns the port.",
                 listening_on(port), journal())]


def curl_with_token(url: str, model: str = "MODEL") -> Command:
    """An authorised call on a POST endpoint: ``/api/show`` is POST-only (a GET → 405).

    Ollama v0.33 server/routes.go registers ``/api/show`` with ``r.POST`` only.
    """
    return curl(url, body={"model": model},
                headers=(f"Authorization: Bearer {SECRET_PLACEHOLDER}",))


def preload(api: str, model: str, *, embedding: bool = False) -> Command:
    """Load ``model`` and keep it loaded: an empty call with ``keep_alive: -1``.

    Ollama v0.33 loads a model for an empty generate/embed call and keeps it for
    ``keep_alive`` (negative: forever) — docs/ollama-wire.md §1.
    """
    if embedding:
        return curl(f"{api}/api/embed", body={"model": model, "input": [], "keep_alive": -1})
    return curl(f"{api}/api/generate", body={"model": model, "keep_alive": -1})


def api_key_export(name: str = "OLLAMA_API_KEY") -> Command:
    """Give the client a key: the placeholder is a word, never ``<token>`` (a redirection)."""
    return export(name, SECRET_PLACEHOLDER)


def pull(model: str, url: str | None = None) -> Command:
    cmd = f"ollama pull {q(model)}"
    return with_host(url, cmd) if url else sh(cmd)


def docker_run(*options: str, image: str = "ollama/ollama") -> Command:
    """``docker run`` with ``options``; every value in them is already quoted."""
    return sh(" ".join(("docker run", *options, image)))


def show(model: str = "MODEL") -> Command:
    """A model's capabilities, parameters and context (``ollama show``)."""
    return sh(f"ollama show {q(model)}")


def list_models() -> Command:
    """The models the server has (``ollama list``): the names a request may use."""
    return sh("ollama list")


def install_ollama() -> Command:
    """Install or upgrade Ollama on Linux with its own script (ollama.com/download)."""
    return sh("curl -fsSL https://ollama.com/install.sh | sh")


def serve_with_nofile(limit: int) -> Command:
    """Start the server by hand with a higher open-file limit (this shell's soft limit)."""
    return sh(f"ulimit -n {int(limit)} && ollama serve")


def docker_nofile(limit: int, port: int = DEFAULT_PORT) -> Command:
    """Create the container with a higher open-file limit (``--ulimit nofile=SOFT:HARD``)."""
    return docker_run("-d", f"--ulimit nofile={int(limit)}:{int(limit)}", f"-p {port}:11434",
                      "-v ollama:/root/.ollama", "--name ollama")


def gpu_status() -> Command:
    """What the NVIDIA driver sees (``nvidia-smi``): no GPU listed means the driver is at fault."""
    return sh("nvidia-smi")


def reload_nvidia_uvm() -> Command:
    """Reload NVIDIA's unified-memory module: after a suspend, CUDA cannot start without it."""
    return sh("sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm")


def dos2unix(path: str = ".env") -> Command:
    """Strip Windows line endings (the trailing ``\\r``) from a file in place."""
    return sh(f"dos2unix {q(path)}")


def export_stripped(name: str) -> Command:
    """Re-export ``name`` without carriage returns and newlines (its value is never shown)."""
    return sh(f"export {name}=\"$(printf %s \"${name}\" | tr -d '\\r\\n')\"")


# Words a client's fix line starts with when it is a shell command (an install, a variable),
# not a line of the client's own language.
_SHELL_WORDS = frozenset({"pip", "pip3", "pipx", "uv", "poetry", "npm", "pnpm", "yarn", "export",
                          "unset", "curl", "ollama", "ollama-doctor", "sudo"})


def client_line(text: str, language: str) -> Command:
    """A line of a client's fix: a shell line (an install, an ``export``) or code in the
    client's ``language`` (``python``; ``node`` for JavaScript/TypeScript)."""
    words = text.split(maxsplit=1)
    if words and words[0] in _SHELL_WORDS:
        return sh(text)
    if language == "python":
        return python(text)
    if language in ("node", "browser"):
        return javascript(text)
    return sh(text)


# ---------------------------------------------------------------------------------------------
# a variable in the server's environment, for the way it was started


def systemd_edit(name: str, value: str, unit: str = "ollama") -> Command:
    """Open a systemd override for ``unit``; the comment says the two lines to add."""
    return sh(f"sudo systemctl edit {q(unit)}   # add: [Service]  "
              f"Environment={_dq(f'{name}={value}')}")


def systemd_unset(name: str, unit: str = "ollama") -> Command:
    """Open a systemd override for ``unit``; the comment says which variable to remove."""
    return sh(f"sudo systemctl edit {q(unit)}   # remove: Environment={_dq(f'{name}=1')}")


def systemd_setting(line: str, unit: str = "ollama") -> Command:
    """Open a systemd override for ``unit``; the comment says the ``[Service]`` line to add."""
    return sh(f"sudo systemctl edit {q(unit)}   # add: [Service]  {line}")


def systemd_restart(unit: str = "ollama") -> tuple[Command, Command]:
    return (sh(f"sudo systemctl restart {q(unit)}"),
            sh(f"systemctl show {q(unit)} --property=Environment"))


def server_env(launcher: Launcher | None, name: str, value: str,
               port: int = DEFAULT_PORT, *, secret: bool = False) -> list[FixStep]:
    """Where to set ``name=value`` so the server sees it, for the way it was started. Pure.

    ``launcher`` ``None`` means unknown. A secret's value is shown as the placeholder.
    """
    shown = SECRET_PLACEHOLDER if secret else value
    kind = launcher.kind if launcher is not None else "unknown"
    unit = ((launcher.unit if launcher is not None else None)
            or "ollama.service").removesuffix(".service")
    if kind == "systemd":
        return [step(f"Ollama runs as the systemd service {unit}: a variable exported in a "
                     "shell never reaches it. Add it to the service (under [Service]) and "
                     "restart it.", systemd_edit(name, shown, unit), *systemd_restart(unit))]
    if kind == "launchd":
        return [step("The macOS app reads launchd's environment, not your shell's: set it "
                     "there, then quit and reopen the app.",
                     sh(f"launchctl setenv {name} {_dq(shown)}"),
                     sh("osascript -e 'quit app \"Ollama\"' && open -a Ollama"))]
    if kind == "windows":
        return [step("The Windows app reads your user environment variables: set it there, "
                     "then quit Ollama from the tray icon and start it again.",
                     sh(f"setx {name} {_dq(shown)}"))]
    if kind == "docker":
        if name == "OLLAMA_HOST":
            return [step(
                "Ollama runs in a container: the ollama/ollama image already sets "
                "OLLAMA_HOST=0.0.0.0 inside; publish the port on every interface (-p "
                f"{port}:11434, not -p 127.0.0.1:{port}:11434) and do not override "
                "OLLAMA_HOST with -e.",
                docker_run("-d", f"-p {port}:11434", "-v ollama:/root/.ollama",
                           "--name ollama"))]
        return [step("Ollama runs in a container: pass the variable when you create it.",
                     docker_run("-d", f"-e {name}={q(shown)}", f"-p {port}:11434",
                                "-v ollama:/root/.ollama", "--name ollama"))]
    if kind == "unknown":
        return [step(
            "How the server was started cannot be seen: set the variable where it starts (a "
            "systemd unit, the desktop app's environment, or the `ollama serve` command) and "
            "restart it. A variable exported in a shell reaches only what that shell starts.",
            systemd_edit(name, shown, unit), serve_with(name, shown))]
    return [step("Ollama was started by hand (`ollama serve`): stop it and start it again with "
                 "the variable in the same command. (A service reads its own environment, never "
                 "your shell's.)", serve_with(name, shown))]


def _dq(value: str) -> str:
    """Double-quoted for the shell, for tools whose own docs show double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


# ---------------------------------------------------------------------------------------------
# whole findings that two probes make the same way


def signin_fix() -> list[FixStep]:
    """The fix for ``cloud-signin-required`` (the server, not the client, must be signed in)."""
    return [step("Sign the server in (run this where the server runs, as its user), or open "
                 "the sign-in URL it gave.", sh("ollama signin")),
            step("Or use a local model instead of the cloud one.")]


def signin_finding(model: str | None, where: str, evidence: dict[str, Any], *,
                   seen: str = "401 unauthorized", then: tuple[FixStep, ...] = ()) -> Finding:
    """``cloud-signin-required``: one wording for the auth and models probes.

    Ollama v0.33 answers a cloud model's call from a server not signed in with 401 and a
    ``signin_url`` (server/routes.go, the cloud proxy); see docs/ollama-wire.md §2.
    """
    return Finding(
        "cloud-signin-required", Severity.ERROR,
        f"{model or 'This cloud model'} runs on Ollama Cloud, and the server at {where} is not "
        f"signed in to ollama.com ({seen}).", evidence, [*signin_fix(), *then], code=401)
