"""``models``: which models the server holds, and whether ``--model`` is one it can use.

Checks:

1. ``GET /api/tags`` at the server's native base (and ``GET {base}/models`` too when the
   target is an OpenAI-style ``…/v1`` base): every model with its size, family, parameter size
   and quantisation. The request is made once per run and shared with the auth probe
   (``shared_tags``), read up to ``STORE_MAX_BYTES`` and parsed one model at a time
   (``parse_tags``): 100,000 models are a 38 MB answer, and the run stays under 150 MB.
2. For ``--model``: is it installed, by Ollama's own matching (``modelname``: case-insensitive
   parts, a missing tag means ``:latest``, the default ``registry.ollama.ai/library/`` prefix
   dropped). If not: the closest installed names and the exact ``ollama pull`` command, plus
   what the server answers for it (``POST /api/show`` → ``404 model 'x:latest' not found``).
3. ``POST /api/show`` for the model: capabilities, context length, parameter size; ``--needs``
   (Ollama's capability names) against the capabilities, naming models on this server that
   have what is missing.
4. Another instance, when the model is missing or the store is empty: what the ``ollama`` CLI on
   this machine lists (only when the binary is on ``PATH``; bounded in time and output; the
   runner is injectable as ``COMMAND_RUNNER``), and what other Ollama servers on this machine
   (``local.find_servers``) hold.
5. Cloud models (tag ``cloud`` or ``…-cloud``): a 401 with ``signin_url`` on ``/api/show``
   means this server is not signed in to ollama.com; a 429 is Ollama Cloud's usage limit; a
   403 ``ollama cloud is disabled`` is ``cloud-disabled``; a 502 is the server failing to reach
   ollama.com (``bad-gateway``; ``warmup.cloud_finding`` words all of them).

Every request goes along the client's path (``Context.route``: through its proxy when one
applies); the summary and the ``path`` fact say which.

Facts: ``native_base``, ``count``, ``models`` (name, size, family, parameter_size,
quantization, capabilities), ``openai_models`` (ids, whether both views agree), ``model``
(requested, installed_as, cloud, show: capabilities, context_length, parameter_size, …),
``needs`` (asked, missing, unknown), ``instances`` (cli, others).

Cause ids: ``model-not-found``, ``model-capability``, ``wrong-instance``,
``cloud-signin-required``, ``cloud-disabled``, ``rate-limited``, ``bad-gateway``,
``server-error``. A 401 or 403 on ``/api/tags`` is
left to the ``auth`` probe.
"""

from __future__ import annotations

import codecs
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import IO, Any, NamedTuple

from ollama_doctor import modelname, net
from ollama_doctor import remedies as R
from ollama_doctor.context import Context, SharedReply
from ollama_doctor.facts import ModelsFacts
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import DEFAULT_URL, base_path_kind

CAPABILITIES = ("completion", "tools", "insert", "vision", "embedding", "thinking", "image",
                "audio")
ALIASES = {"generate": "completion", "chat": "completion", "tool": "tools",
           "embed": "embedding", "embeddings": "embedding", "think": "thinking"}
MAX_LISTED = 200  # models kept in facts
MAX_OTHER_SHOWS = 12  # /api/show calls to find models that have a missing capability
MAX_INSTANCES = 8  # other local listeners asked for their models
MAX_CLI_OUTPUT = 256 * 1024
TAGS_MAX_BYTES = 4 << 20  # another server's /api/tags, and /v1/models
# The target's /api/tags: 100,000 models are ~38 MB (~380 bytes a model, capabilities
# included); this leaves room for longer names. Read once per run (``shared_tags``).
STORE_MAX_BYTES = 48 << 20


# --------------------------------------------------------------------------------------------
# the ollama CLI, behind an injectable runner


@dataclass
class CommandResult:
    returncode: int | None
    stdout: str
    stderr: str
    error: str | None = None  # could not start, or timed out

    def to_dict(self) -> dict[str, Any]:
        return {"returncode": self.returncode, "error": self.error,
                "stderr": self.stderr.strip()[:300]}


CommandRunner = Callable[[Sequence[str], Mapping[str, str], float], CommandResult]


def run_command(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> CommandResult:
    """Run ``argv`` with ``env``; at most ``timeout`` seconds and ``MAX_CLI_OUTPUT`` bytes kept."""
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env))
    except OSError as exc:
        return CommandResult(None, "", "", f"{type(exc).__name__}: {exc}")
    bufs = (bytearray(), bytearray())

    def pump(stream: IO[bytes] | None, buf: bytearray) -> None:
        if stream is None:
            return
        while True:
            chunk = stream.read(65536)
            if not chunk:
                return
            if len(buf) < MAX_CLI_OUTPUT:  # keep reading past the bound so the child never blocks
                buf += chunk[:MAX_CLI_OUTPUT - len(buf)]

    pumps = [threading.Thread(target=pump, args=(s, b), daemon=True, name="od-cli-pump")
             for s, b in ((proc.stdout, bufs[0]), (proc.stderr, bufs[1]))]
    for thread in pumps:
        thread.start()
    error = None
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        error = f"no answer within {timeout:g} s"
    for thread in pumps:
        thread.join(1.0)
    out, err = (bytes(b).decode("utf-8", "replace") for b in bufs)
    return CommandResult(None if error else proc.returncode, out, err, error)


COMMAND_RUNNER: CommandRunner = run_command


# --------------------------------------------------------------------------------------------
# the probe


def run(ctx: Context) -> Outcome:
    outcome = ctx.on_path(_run(ctx))
    return outcome.with_evidence(evidence_of(outcome.facts))


def evidence_of(facts: dict[str, Any]) -> ModelsFacts | None:
    """The typed part of this probe's facts (``ctx.facts(ModelsFacts)`` for the others)."""
    return ModelsFacts.from_result(facts)


def _run(ctx: Context) -> Outcome:
    target = ctx.target
    headers = ctx.client_headers(with_origin=False)
    findings: list[Finding] = []
    facts: dict[str, Any] = {}

    base, shared = _fetch_tags(ctx, headers)
    tags = shared.reply
    facts["native_base"] = base
    facts["tags"] = {"request": f"GET {base}/api/tags", "answer": tags.describe()}
    if not tags.ok:
        return _tags_failed(ctx, tags, facts, findings)
    if shared.over_cap:
        return Outcome(Status.WARN, f"GET {base}/api/tags answered more than "
                                    f"{STORE_MAX_BYTES:,} bytes (this tool reads no more); "
                                    "models unknown", facts)
    entries = shared.parsed
    if entries is None:
        facts["tags"]["body"] = tags.snippet(200)
        return Outcome(Status.WARN, f"GET {base}/api/tags did not answer Ollama's model list",
                       facts)
    names = [e.name for e in entries]
    facts["count"] = len(entries)
    facts["models"] = [e.record() for e in entries[:MAX_LISTED]]
    if len(entries) > MAX_LISTED:
        facts["models_truncated"] = True
    if base_path_kind(target.path) == "openai" or (
            not target.path and ctx.client.base_path == "/v1"):  # an OpenAI SDK's own base
        facts["openai_models"] = _openai_view(ctx, headers, names)

    model = ctx.options.model
    if not model:
        if not entries:
            _check_instances(ctx, headers, facts, findings, base, None, names)
        return _finish(f"{_count(len(entries))} on {base}" if entries else
                       f"no models installed on {base}", facts, findings,
                       empty_is_warn=not entries)

    model = model.strip() or model
    installed_as = modelname.find(model, names)
    info: dict[str, Any] = {"requested": ctx.options.model, "installed_as": installed_as,
                            "cloud": modelname.is_cloud(model)}
    trouble = modelname.problems(ctx.options.model or "")
    if trouble:
        info["name_problems"] = trouble
    facts["model"] = info
    if installed_as is not None and len(entries) > MAX_LISTED and not any(
            r["name"] == installed_as for r in facts["models"]):
        # the model's own row, past the listed ones: its size and host are read from facts
        facts["models"].append(next(e for e in entries if e.name == installed_as).record())
    if installed_as is None and not info["cloud"]:
        _not_found(ctx, headers, facts, findings, base, model, names)
        return _finish(f"{model} is not on {base} ({_count(len(entries))})", facts, findings)

    show = ctx.http("POST", base + "/api/show", headers=headers,
                    json_body={"model": installed_as or model}, max_bytes=2 << 20)
    shown = _judge_show(ctx, show, facts, findings, base, model, names, installed_as)
    if shown is not None:
        info["show"] = shown
        _check_needs(ctx, headers, facts, findings, base, installed_as or model, model, shown,
                     entries)
    where = f"installed as {installed_as}" if installed_as else "a cloud model"
    return _finish(f"{model}: {where} ({_count(len(entries))} on {base})", facts, findings)


def _count(n: int) -> str:
    return f"{n} model{'' if n == 1 else 's'}"


def _finish(summary: str, facts: dict[str, Any], findings: list[Finding], *,
            empty_is_warn: bool = False) -> Outcome:
    return Outcome.from_findings(summary, facts, findings,
                                 floor=Status.WARN if empty_is_warn else Status.PASS)


def native_base(ctx: Context) -> str:
    """Where Ollama's own ``/api/…`` routes are for this target: the base without ``/v1``
    (or a doubled ``/api``), keeping a reverse-proxy prefix."""
    target = ctx.target
    path = target.path
    kind = base_path_kind(path)
    if kind == "openai":
        path = path[: -len("/v1")]
    elif kind == "api":
        path = path[: path.lower().rfind("/api")]
    return target.root_url + path


def shared_tags(ctx: Context, url: str, headers: Mapping[str, str], *, parsed: bool = True
                ) -> SharedReply[list[ModelRow]]:
    """``GET url`` (an ``/api/tags``) once per run for the models and auth probes, and its
    list parsed once (``Context.tags``); ``parsed=False`` (auth) does not wait for the list."""
    return ctx.tags(url, headers, parse_tags if parsed else None, max_bytes=STORE_MAX_BYTES)


def _fetch_tags(ctx: Context, headers: dict[str, str]
                ) -> tuple[str, SharedReply[list[ModelRow]]]:
    base = native_base(ctx)
    shared = shared_tags(ctx, base + "/api/tags", headers)
    if base != ctx.target.root_url and shared.reply.status == 404:
        root = ctx.target.root_url
        again = shared_tags(ctx, root + "/api/tags", headers)
        if again.reply.ok:
            return root, again
    return base, shared


class ModelRow(NamedTuple):
    """One model of ``/api/tags``, compact: a store of 100,000 models is 100,000 of these
    (~200 bytes each; a dict per model and one for its details would be ten times that).
    ``details`` (family, parameter size, quantisation) and ``capabilities`` are shared by every
    row that has the same ones."""

    name: str
    size: int | None
    details: tuple[Any, Any, Any]
    capabilities: tuple[str, ...] | None
    remote_host: str | None

    def record(self) -> dict[str, Any]:
        """The row as the probe's facts show it (``facts.models[]``)."""
        family, parameter_size, quantization = self.details
        out: dict[str, Any] = {
            "name": self.name, "size": self.size, "size_human": _human(self.size),
            "family": family, "parameter_size": parameter_size, "quantization": quantization,
        }
        if self.capabilities is not None:
            out["capabilities"] = list(self.capabilities)
        if self.remote_host is not None:
            out["remote_host"] = self.remote_host
        return out


def parse_tags(body: bytes) -> list[ModelRow] | None:
    """A ``GET /api/tags`` body → one row per model; ``None`` when it is not Ollama's list
    (``{"models": [...]}``, ``api.ListResponse``; ``"models": null`` is Go's empty slice).

    Linear in time, and in memory it holds little beyond the rows: the body is decoded a window
    at a time and read one JSON value at a time (``json.JSONDecoder.raw_decode``), so the
    ``models`` array is never one Python object. ``json.loads`` of a 100,000-model answer
    (38 MB) holds a 38 MB string and ~200 MB of dicts, more than the run may use. A single
    value (one model) longer than ``_MAX_VALUE`` (give or take a window) is not an Ollama
    answer.
    """
    try:
        return _read_list(_Values(body))
    except (ValueError, UnicodeDecodeError):  # json.JSONDecodeError is a ValueError
        return None


_WINDOW = 256 * 1024  # characters decoded at a time
_BATCH = 64 * 1024  # characters of whole models scanned as one array (measured: fastest)
_MAX_VALUE = 1 << 20  # characters one model (or any other top-level value) may take
_BLANKS = re.compile(r"[ \t\n\r]*")


class _Values:
    """JSON values read one at a time from a window of text over a UTF-8 body."""

    def __init__(self, body: bytes) -> None:
        self._body = memoryview(body)
        self._offset = 0  # bytes of the body decoded so far
        self._decode = codecs.getincrementaldecoder("utf-8-sig")().decode
        # json's scanner (C): (value, end) for the value at an index, StopIteration when none
        # starts there, JSONDecodeError inside a broken one; raw_decode without its wrapper.
        decoder: Any = json.JSONDecoder()  # its settings are the scanner's "context"
        self.scan: Callable[[str, int], tuple[Any, int]] = make_scanner(decoder)
        self.text = ""
        self.pos = 0
        self.eof = not body

    def _more(self) -> bool:
        """Decode another window of the body; ``False`` at its end."""
        if self.eof:
            return False
        if self.pos:  # drop what was read
            self.text, self.pos = self.text[self.pos:], 0
        chunk = self._body[self._offset:self._offset + _WINDOW]
        self._offset += len(chunk)
        self.eof = self._offset >= len(self._body)
        self.text += self._decode(chunk, self.eof)
        return True

    def peek(self) -> str:
        """The next character after blanks (``""`` at the end of the body), not consumed."""
        while True:
            match = _BLANKS.match(self.text, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def take(self, char: str) -> bool:
        """Consume ``char`` when it is next."""
        if self.peek() != char:
            return False
        self.pos += 1
        return True

    def value(self) -> Any:
        """The next JSON value; more of the body is decoded while it runs past the window."""
        self.peek()
        while True:
            try:
                value, end = self.scan(self.text, self.pos)
            except (StopIteration, ValueError):
                end = -1
            # a value that ends at the window's edge may go on (a number, or a cut string)
            if 0 <= end < len(self.text) or (end >= 0 and self.eof):
                self.pos = end
                return value
            if len(self.text) - self.pos > _MAX_VALUE or not self._more():
                raise ValueError("not a complete JSON value")


def _read_list(values: _Values) -> list[ModelRow] | None:
    if not values.take("{"):
        return None
    rows: list[ModelRow] | None = []  # no "models" key: no models
    if not values.take("}"):
        while True:
            key = values.value()
            if not isinstance(key, str) or not values.take(":"):
                return None
            if key == "models" and values.peek() == "[":
                rows = _read_rows(values)
            else:
                value = values.value()
                if key == "models":  # the last one counts, as for json.loads
                    rows = [] if value is None else None
            if values.take(","):
                continue
            if not values.take("}"):
                return None
            break
    return rows if values.peek() == "" else None


def _row(item: Any, seen_details: dict[tuple[Any, Any, Any], tuple[Any, Any, Any]],
         seen_caps: dict[tuple[Any, ...], tuple[str, ...]]) -> ModelRow | None:
    """One model of the list as a row (``None``: not an object, or no name). Equal details
    and capabilities are shared between rows through ``seen_details`` and ``seen_caps``."""
    if item.__class__ is not dict:
        return None
    get = item.get
    name = get("name") or get("model")
    if name.__class__ is not str or not name:
        return None
    details = get("details")
    if details.__class__ is not dict:
        details = _NO_DETAILS
    size, caps, remote = get("size"), get("capabilities"), get("remote_host")
    triple = (details.get("family"), details.get("parameter_size"),
              details.get("quantization_level"))
    try:  # noqa: SIM105 (contextlib.suppress would cost a context per model)
        triple = seen_details.setdefault(triple, triple)
    except TypeError:  # a list or an object among them: kept as it is
        pass
    return tuple.__new__(ModelRow, (
        name, size if isinstance(size, int) else None, triple,
        None if caps is None else _capabilities(caps, seen_caps),
        remote if remote.__class__ is str else None))


def _read_rows(values: _Values) -> list[ModelRow]:
    """The ``models`` array: a row per model; a model without a name (or that is not an
    object) is left out.

    Written for speed, since it runs once per model (100,000 in well under a second). The
    models that lie whole in the window are scanned as one array: the text up to the last
    ``},{`` in the next ``_BATCH`` characters, wrapped in brackets. That is exact: JSON reads a
    text left to right without looking ahead, so when the wrapped text is one whole array, its
    items are the next models; a ``},{`` inside a string or a nested value leaves a bracket or
    a quote open, the wrapped text is no whole array, and the models are read one at a time.
    Rows share equal details and capabilities."""
    values.take("[")
    rows: list[ModelRow] = []
    if values.take("]"):
        return rows
    scan, append = values.scan, rows.append
    seen_details: dict[tuple[Any, Any, Any], tuple[Any, Any, Any]] = {}
    seen_caps: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def add(item: Any) -> None:
        row = _row(item, seen_details, seen_caps)
        if row is not None:
            append(row)

    text, pos = values.text, values.pos
    while True:
        cut = text.rfind("},{", pos, pos + _BATCH)
        if cut > pos:
            wrapped = "[" + text[pos:cut + 1] + "]"
            try:
                items, end = scan(wrapped, 0)
            except (StopIteration, ValueError):
                end = -1
            if end == len(wrapped):
                for item in items:
                    add(item)
                pos = cut + 2
                continue
        try:  # one model: at the window's edge or the array's end, or one the batch missed
            item, end = scan(text, pos)
        except (StopIteration, ValueError):
            end = -1
        if 0 <= end < len(text):
            pos = end
        else:  # blanks first, or the model runs past the window: the general path
            values.pos = pos
            item = values.value()
            text, pos = values.text, values.pos
        add(item)
        if text.startswith(",", pos):  # Go writes no blanks: the common case
            pos += 1
            continue
        values.pos = pos
        if values.take(","):
            text, pos = values.text, values.pos
            continue
        if values.take("]"):
            return rows
        raise ValueError("not a JSON array")


_NO_DETAILS: dict[str, Any] = {}


def _capabilities(caps: Any, seen: dict[tuple[Any, ...], tuple[str, ...]]
                  ) -> tuple[str, ...] | None:
    if caps.__class__ is not list:
        return None
    try:
        key = tuple(caps)
        known = seen.get(key)
    except TypeError:  # an unhashable item (an object): not Ollama's list of names
        return tuple(c for c in caps if isinstance(c, str))
    if known is None:
        known = seen[key] = tuple(c for c in caps if isinstance(c, str))
    return known


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _human(size: int | None) -> str | None:
    if size is None:
        return None
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):  # decimal units, as `ollama list` shows
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return None


def _tags_failed(ctx: Context, tags: net.HttpReply, facts: dict[str, Any],
                 findings: list[Finding]) -> Outcome:
    base = facts["native_base"]
    status = tags.status
    if status in (401, 403):
        return Outcome(Status.WARN, f"GET {base}/api/tags was refused (HTTP {status}); the auth "
                                    "probe tells why", facts)
    if status == 429:
        findings.append(Finding(
            "rate-limited", Severity.ERROR,
            f"Something in front of {base} throttles calls: GET /api/tags answered 429 (local "
            "Ollama never sends 429).", {"tags": tags.to_evidence()},
            [FixStep("Pace calls below the gateway's limit and back off on 429, honouring "
                     "Retry-After.")], code=429))
        return Outcome(Status.FAIL, f"GET {base}/api/tags answered 429", facts, findings)
    if status is not None and status >= 500:
        findings.append(Finding(
            "server-error", Severity.ERROR,
            f"Listing the models failed: GET {base}/api/tags answered {status} "
            f"{tags.error_message() or tags.snippet(120)!r}.", {"tags": tags.to_evidence()},
            [FixStep("Read the server log; the model store may be unreadable.",
                     (R.journal(),))], confidence=Confidence.MEDIUM,
            code=status))
        return Outcome(Status.FAIL, f"GET {base}/api/tags answered {status}", facts, findings)
    return Outcome(Status.WARN, f"GET {base}/api/tags gave {tags.describe()}; models unknown",
                   facts)


def _openai_view(ctx: Context, headers: dict[str, str], names: list[str]) -> dict[str, Any]:
    """``GET {base}/models``: the list an OpenAI client sees (``data`` is null when empty)."""
    url = ctx.client_base_url() + "/models"
    reply = ctx.http("GET", url, headers=headers, max_bytes=TAGS_MAX_BYTES)
    view: dict[str, Any] = {"request": f"GET {url}", "answer": reply.describe()}
    data = reply.json()
    if reply.ok and isinstance(data, dict) and data.get("object") == "list":
        items = data.get("data") or []
        ids = [str(i["id"]) for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]
        view["ids"] = ids[:MAX_LISTED]
        view["agrees"] = ({modelname.parse(i).key for i in ids}
                          == {modelname.parse(n).key for n in names})
    return view




# --------------------------------------------------------------------------------------------
# a model that is not there


def _pull_command(ctx: Context, base: str, model: str) -> R.Command:
    return R.pull(model, None if base == DEFAULT_URL else base)


def _not_found(ctx: Context, headers: dict[str, str], facts: dict[str, Any],
               findings: list[Finding], base: str, model: str, names: list[str],
               show: net.HttpReply | None = None) -> None:
    if show is None:  # what a generate or chat would meet, in Ollama's own words
        show = ctx.http("POST", base + "/api/show", headers=headers, json_body={"model": model},
                        max_bytes=64 * 1024)
    close = modelname.suggest(model, names)
    facts["model"]["suggestions"] = close
    evidence: dict[str, Any] = {
        "model": model, "server": base, "installed": names[:20],
        "suggestions": close, "show": show.to_evidence(),
    }
    if facts["model"].get("name_problems"):
        evidence["name_problems"] = facts["model"]["name_problems"]
    if close:
        hint = f"did you mean {' or '.join(close)}?"
    elif names:
        shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
        hint = f"it has {shown}."
    else:
        hint = "it has no models at all."
    fixes = [FixStep("Pull it onto the server your client calls.",
                     (_pull_command(ctx, base, model),))]
    if close:
        fixes.append(FixStep(f"Or call an installed model by its exact name, e.g. {close[0]}.",
                             (R.json_line(f'"model": {json.dumps(close[0])}'),)))
    if facts["model"].get("name_problems"):
        fixes.insert(0, FixStep("Fix the model name: " + "; ".join(
            facts["model"]["name_problems"]) + "."))
    findings.append(Finding(
        "model-not-found", Severity.ERROR,
        f"Model {model!r} is not on the server at {base}: {hint}", evidence, fixes, code=404))
    _check_instances(ctx, headers, facts, findings, base, model, names)


# --------------------------------------------------------------------------------------------
# /api/show


def _judge_show(ctx: Context, show: net.HttpReply, facts: dict[str, Any],
                findings: list[Finding], base: str, model: str, names: list[str],
                installed_as: str | None) -> dict[str, Any] | None:
    data = show.json()
    if show.ok and isinstance(data, dict):
        return _show_facts(data)
    facts["model"]["show_error"] = show.to_evidence()
    message = show.error_message() or show.snippet(200)
    cloud = facts["model"]["cloud"] or any(
        e.get("remote_host") for e in facts.get("models", []) if e["name"] == installed_as)
    signin = data.get("signin_url") if isinstance(data, dict) else None
    if show.status == 401 and (isinstance(signin, str) or (cloud and message == "unauthorized")):
        evidence: dict[str, Any] = {"model": model, "show": show.to_evidence()}
        if isinstance(signin, str):
            evidence["signin_url"] = signin
        findings.append(R.signin_finding(model, base, evidence))
        return None
    if show.status == 429:
        cloud_text = "Ollama Cloud's usage limit" if cloud else "a gateway's rate limit"
        findings.append(Finding(
            "rate-limited", Severity.ERROR,
            f"Calls for {model} are throttled by {cloud_text} (429: {message[:160]!r}); local "
            "Ollama never sends 429.",
            {"model": model, "show": show.to_evidence(),
             "retry_after": show.headers.get("retry-after")},
            [FixStep("Wait for the quota to reset or upgrade the plan "
                     "(https://ollama.com/upgrade), or use a local model." if cloud else
                     "Pace calls below the limit and back off on 429, honouring Retry-After.")],
            code=429))
        return None
    if show.status == 404 and installed_as is None:
        _not_found(ctx, ctx.client_headers(with_origin=False), facts, findings, base, model,
                   names, show)
        return None
    if cloud and (show.status == 502 or (show.status == 403
                                         and "cloud is disabled" in message.lower())):
        from ollama_doctor.probes.warmup import cloud_finding

        findings.append(cloud_finding(model, base, show))  # cloud turned off, or no ollama.com
        return None
    return None  # 401/403 are the auth probe's; anything else is recorded in facts


def _show_facts(data: dict[str, Any]) -> dict[str, Any]:
    details = _dict(data.get("details"))
    info = _dict(data.get("model_info"))
    arch = info.get("general.architecture")
    context_length = info.get(f"{arch}.context_length") if isinstance(arch, str) else None
    if context_length is None:
        context_length = next((v for k, v in info.items()
                               if isinstance(k, str) and k.endswith(".context_length")), None)
    caps = data.get("capabilities")
    out: dict[str, Any] = {
        "capabilities": [c for c in caps if isinstance(c, str)] if isinstance(caps, list)
        else None,
        "context_length": context_length if isinstance(context_length, int) else None,
        "parameter_size": details.get("parameter_size"),
        "family": details.get("family"),
        "quantization": details.get("quantization_level"),
        "architecture": arch if isinstance(arch, str) else None,
    }
    num_ctx = _num_ctx(data.get("parameters"))
    if num_ctx is not None:
        out["num_ctx"] = num_ctx
    for key in ("remote_model", "remote_host"):
        if isinstance(data.get(key), str):
            out[key] = data[key]
    return out


def _num_ctx(parameters: Any) -> int | None:
    """``num_ctx`` set in the Modelfile (``parameters`` is its text form)."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "num_ctx" and parts[1].isdigit():
            return int(parts[1])
    return None


# --------------------------------------------------------------------------------------------
# --needs


def normalise_needs(needs: Sequence[str]) -> tuple[list[str], list[str]]:
    """``--needs`` values → (Ollama capability names, unknown values). Accepts a comma list."""
    asked: list[str] = []
    unknown: list[str] = []
    for raw in needs:
        for item in raw.split(","):
            name = ALIASES.get(item.strip().lower(), item.strip().lower())
            if not name:
                continue
            target = asked if name in CAPABILITIES else unknown
            if name not in target:
                target.append(name if name in CAPABILITIES else item.strip())
    return asked, unknown


def _what_ollama_says(model: str, capability: str) -> str:
    """Ollama's 400: generate, chat and thinking quote the name as sent, the others the full
    name (docs/ollama-wire.md §2.2)."""
    parsed = modelname.parse(model)
    full = f"{parsed.host}/{parsed.namespace}/{parsed.model}:{parsed.tag}"
    if capability == "completion":
        return f'400 "{model}" does not support generate (or chat)'
    if capability == "thinking":
        return f'400 "{model}" does not support thinking'
    return f"400 {full} does not support {capability}"


def _check_needs(ctx: Context, headers: dict[str, str], facts: dict[str, Any],
                 findings: list[Finding], base: str, model: str, requested: str,
                 shown: dict[str, Any], entries: list[ModelRow]) -> None:
    if not ctx.options.needs:
        return
    asked, unknown = normalise_needs(ctx.options.needs)
    needs: dict[str, Any] = {"asked": asked}
    if unknown:
        needs["unknown"] = unknown
        needs["known_names"] = list(CAPABILITIES)
    facts["needs"] = needs
    caps = shown.get("capabilities")
    if caps is None:
        needs["missing"] = None
        needs["note"] = "this server's /api/show lists no capabilities (Ollama older than 0.6)"
        return
    missing = [c for c in asked if c not in caps]
    needs["missing"] = missing
    if not missing:
        return
    having = _models_with(ctx, headers, base, model, missing, entries)
    needs["models_with_it"] = having
    names = ", ".join(missing)
    alternatives = ", ".join(having[:5])
    message = (f"{model} cannot do what the call needs: it lacks {names} (it has "
               f"{', '.join(caps) or 'no capabilities'}).")
    if having:
        message += f" On this server {alternatives} {'has' if len(having) == 1 else 'have'} it."
    fixes = []
    if having:
        fixes.append(FixStep(f"Call a model that has {names}.",
                             (R.json_line(f'"model": {json.dumps(having[0])}'),)))
    fixes.append(FixStep(
        f"{'Or pull' if having else 'Pull'} a model that has it ({_examples(missing)}), or "
        f"drop {names} from the call.",
        tuple(_pull_command(ctx, base, m) for m in _pull_examples(missing))))
    findings.append(Finding(
        "model-capability", Severity.ERROR, message,
        {"model": model, "capabilities": caps, "needs": asked, "missing": missing,
         "ollama_answers": [_what_ollama_says(requested, c) for c in missing],
         "models_with_it": having}, fixes, code=400))


_EXAMPLES = {"tools": "llama3.1", "vision": "llama3.2-vision", "embedding": "nomic-embed-text",
             "thinking": "qwen3", "insert": "qwen2.5-coder", "completion": "llama3.2"}


def _pull_examples(missing: list[str]) -> list[str]:
    out: list[str] = []
    for cap in missing:
        example = _EXAMPLES.get(cap)
        if example and example not in out:
            out.append(example)
    return out[:2]


def _examples(missing: list[str]) -> str:
    known = [f"{_EXAMPLES[c]} has {c}" for c in missing if c in _EXAMPLES]
    return ", ".join(known) or "see https://ollama.com/search"


def _models_with(ctx: Context, headers: dict[str, str], base: str, model: str,
                 missing: list[str], entries: list[ModelRow]) -> list[str]:
    """Installed models that have every missing capability (tags' list, else ``/api/show``)."""
    out: list[str] = []
    asked = 0
    for entry in entries:
        name = entry.name
        if modelname.same(name, model):
            continue
        caps: Sequence[str] | None = entry.capabilities
        if caps is None:
            left = ctx.remaining()
            if asked >= MAX_OTHER_SHOWS or (left is not None and left < 0.5):
                continue
            asked += 1
            reply = ctx.http("POST", base + "/api/show", headers=headers,
                             json_body={"model": name}, max_bytes=2 << 20,
                             timeout=ctx.op_timeout(min(ctx.options.timeout, 3.0)))
            data = reply.json()
            if not (reply.ok and isinstance(data, dict)):
                continue
            caps = _show_facts(data)["capabilities"]
        if caps and all(c in caps for c in missing):
            out.append(name)
    return out


# --------------------------------------------------------------------------------------------
# another instance


def _check_instances(ctx: Context, headers: dict[str, str], facts: dict[str, Any],
                     findings: list[Finding], base: str, model: str | None,
                     names: list[str]) -> None:
    """Compare the answering store with the CLI's listing and other local servers' stores."""
    instances: dict[str, Any] = {}
    facts["instances"] = instances
    cli = _cli_listing(ctx)
    if cli is not None:
        instances["cli"] = cli
    others = _other_servers(ctx)
    if others:
        instances["others"] = others

    cli_names: list[str] = cli.get("models", []) if cli else []
    cli_host = str(cli["host"]) if cli else ""
    holders: list[str] = []  # descriptions of where the model (or any model) is
    commands: list[R.Command] = []
    if model is not None:
        if cli and modelname.find(model, cli_names):
            holders.append(f"the ollama CLI (which talks to {cli_host}) lists it")
            commands.append(R.export_host(cli_host))
        for other in others:
            found = modelname.find(model, other.get("models", []))
            if found:
                holders.append(f"the server at {other['url']} (pid {other['pid']}) has it as "
                               f"{found}")
                commands.append(R.export_host(str(other["url"])))
        if not holders and not names and (cli_names or any(o.get("models") for o in others)):
            _wrong_instance(findings, base, model, names, cli, others, Severity.WARNING,
                            Confidence.MEDIUM, [], commands)
            return
        if holders:
            _wrong_instance(findings, base, model, names, cli, others, Severity.ERROR,
                            Confidence.HIGH, holders, commands)
        return
    # no model asked: only an empty store next to a populated one is worth saying
    if not names:
        if cli_names:
            holders.append(f"the ollama CLI (which talks to {cli_host}) lists "
                           f"{_count(len(cli_names))}")
            commands.append(R.export_host(cli_host))
        for other in others:
            if other.get("models"):
                holders.append(f"the server at {other['url']} (pid {other['pid']}) has "
                               f"{_count(len(other['models']))}")
                commands.append(R.export_host(str(other["url"])))
        if holders:
            _wrong_instance(findings, base, None, names, cli, others, Severity.WARNING,
                            Confidence.HIGH, holders, commands)


def _wrong_instance(findings: list[Finding], base: str, model: str | None, names: list[str],
                    cli: dict[str, Any] | None, others: list[dict[str, Any]],
                    severity: Severity, confidence: Confidence, holders: list[str],
                    commands: list[R.Command]) -> None:
    what = f"{model!r} is not on the server at {base}" if model else \
        f"The server at {base} has no models"
    if holders:
        message = f"{what}, but {'; '.join(holders)}: your client talks to another instance."
    else:
        message = (f"{what} and its store is empty, while another store on this machine has "
                   "models: your client may talk to another instance than the one you pulled to.")
    evidence: dict[str, Any] = {"server": base, "models_here": names[:20]}
    if cli is not None:
        evidence["cli"] = cli
    if others:
        evidence["other_servers"] = others
    fixes = []
    if commands:
        fixes.append(FixStep("Point your client at the server that holds the models.",
                             tuple(dict.fromkeys(commands))))
    fixes.append(FixStep(
        "Or run a single server: find every Ollama server on this machine, stop the extra one, "
        "and set OLLAMA_MODELS for the one that remains if its store is elsewhere.",
        (R.sh("ps aux | grep 'ollama serve'"), R.with_host(base, "ollama list"))))
    findings.append(Finding("wrong-instance", severity, message, evidence, fixes,
                            confidence, code=404 if model else None))


def _cli_listing(ctx: Context) -> dict[str, Any] | None:
    """What ``ollama list`` shows on this machine, when the CLI is on PATH."""
    binary = shutil.which("ollama", path=ctx.env.get("PATH"))
    if binary is None:
        return None
    host = ctx.env.get("OLLAMA_HOST", "").strip() or DEFAULT_URL
    result = COMMAND_RUNNER([binary, "list"], ctx.env, ctx.op_timeout(min(ctx.options.timeout,
                                                                          5.0)))
    out: dict[str, Any] = {"binary": binary, "host": host, **result.to_dict()}
    if result.error is None and result.returncode == 0:
        out["models"] = modelname.parse_cli_list(result.stdout)
    return out


def _other_servers(ctx: Context) -> list[dict[str, Any]]:
    """Other Ollama listeners on this machine and the models each holds."""
    from ollama_doctor.local import find_servers

    try:
        servers = find_servers(ctx)
    except Exception:  # psutil trouble must not hide the rest of the probe
        return []
    target = ctx.target
    seen: set[tuple[str, int]] = set()
    out: list[dict[str, Any]] = []
    for server in servers:
        for address, port in server.listeners:
            dial = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address, address)
            same_port = port == target.port
            if same_port and (target.is_loopback or dial == target.dial_host
                              or address in ("0.0.0.0", "::", "")):
                continue
            if (dial, port) in seen or len(out) >= MAX_INSTANCES:
                continue
            seen.add((dial, port))
            host = f"[{dial}]" if ":" in dial else dial
            url = f"http://{host}:{port}"
            left = ctx.remaining()
            if left is not None and left < 0.3:
                break
            reply = ctx.http("GET", url + "/api/tags", max_bytes=TAGS_MAX_BYTES,
                             timeout=ctx.op_timeout(min(ctx.options.timeout, 2.0)))
            entries = parse_tags(reply.body) if reply.ok and not reply.truncated else None
            if entries is None:
                continue  # not an Ollama API on that port
            out.append({"pid": server.pid, "url": url,
                        "models": [e.name for e in entries][:MAX_LISTED]})
    return out
