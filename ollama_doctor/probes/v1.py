"""The OpenAI-compatible path (``--v1``): what an OpenAI client meets at ``{base}/…``.

Opt-in; implied by ``--client openai-python``/``openai-node`` and by a target whose base path
is ``/v1``. The target stays the server (scheme, host, port); the base path is the client's:
the target's own path when it has one (an OpenAI SDK appends ``/models`` and
``/chat/completions`` to it as given), else ``/v1``. Every request goes along the client's path
(``ctx.http``: the client family's proxy), and each one is recorded in ``facts["requests"]``
(``POST /v1/chat/completions``).

Checks, as an OpenAI client makes them (``middleware/openai.go`` ``ListMiddleware`` and
``ChatMiddleware``, ``openai/openai.go``, Ollama v0.33):

- ``GET {base}/models``. A plain-text ``404 page not found`` from gin under a base without
  ``/v1`` (``http://host:11434`` given to ``OpenAI(base_url=…)``) is ``wrong-base-path``,
  confirmed by the same call under ``/v1``.
- A one-token ``POST {base}/chat/completions``, not streamed and streamed (SSE ending
  ``data: [DONE]``). Ollama's ``/v1`` 404 ``{"error":{"message":"model 'x' not found",
  "type":"not_found_error",…}}`` is ``model-not-found`` (with the ids ``/v1/models`` lists as
  suggestions); ``… does not support tools`` / ``thinking`` is ``model-capability``.
- With ``--needs tools``, the same call with one tool: ``model-capability`` when refused.
- A reasoning model answers a one-token call with only reasoning. The probe then asks again
  with ``max_tokens`` ``BUDGET``: when the whole budget still goes to reasoning (empty content,
  ``finish_reason: "length"``) that is ``THINKING_CAUSE``, and a third call with
  ``reasoning_effort: "none"`` (Ollama's ``think: false``) shows whether turning thinking off
  fixes it. ``thinking_exhausted`` is the pure detector, for native answers too
  (``done_reason: "length"``, ``llm/server.go``).

OpenAI's SDKs refuse to start without a non-empty ``api_key`` (``OPENAI_API_KEY``); Ollama
ignores it (``docs/api/openai-compatibility.mdx``): ``facts["api_key"]`` says so.

Cause ids emitted: ``wrong-base-path``, ``model-not-found``, ``model-capability``,
``server-error``, and ``THINKING_CAUSE`` (``thinking-budget`` once the catalogue has it;
``bad-request`` until then).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ollama_doctor import modelname
from ollama_doctor.causes import CAUSES
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import base_path_kind

if TYPE_CHECKING:
    from ollama_doctor import net
    from ollama_doctor.context import Context

THINKING_CAUSE = "thinking-budget" if "thinking-budget" in CAUSES else "bad-request"
PROMPT = "Reply with OK."
BUDGET = 256  # max_tokens of the follow-up call: what a short answer is often given
CONCLUSIVE_BUDGET = 16  # below this a reasoning-only answer says little about the app's calls
MAX_BYTES = 256 * 1024
TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "The current time.",
    "parameters": {"type": "object", "properties": {}}}}
KEY_NOTE = ("OpenAI's SDKs refuse to start without a non-empty api_key (OPENAI_API_KEY); "
            "Ollama ignores it, so any string works, e.g. api_key=\"ollama\".")


# ---- the pure detector --------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def thinking_exhausted(answer: Mapping[str, Any] | None, *, budget: int | None = None,
                       content: str | None = None, thinking: str | None = None,
                       capabilities: Iterable[str] | None = None) -> dict[str, Any] | None:
    """Did a reasoning model spend the whole token budget thinking? Pure.

    ``answer`` is a native final object (``/api/generate``, ``/api/chat``: ``done_reason``,
    ``response``/``message.content``, ``thinking``/``message.thinking``) or a ``/v1`` chat
    completion (``choices[0].finish_reason``, ``message.content``/``reasoning``). For a
    streamed answer give the ``content`` and ``thinking`` gathered from the chunks (the last
    chunk holds neither). When the thinking text is unknown, a model with the ``thinking``
    capability whose answer stopped at the budget with empty content counts.
    Returns the evidence, or ``None``.
    """
    if not isinstance(answer, Mapping):
        return None
    choices = answer.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        api, choice = "openai", choices[0]
        reason = choice.get("finish_reason")
        message = choice.get("message") or choice.get("delta") or {}
        message = message if isinstance(message, Mapping) else {}
        got_content = _text(message.get("content"))
        got_thinking = _text(message.get("reasoning")) or _text(message.get("reasoning_content"))
    else:
        api, reason = "native", answer.get("done_reason")
        message = answer.get("message") if isinstance(answer.get("message"), Mapping) else None
        source = message if message is not None else answer
        got_content = _text(source.get("content" if message is not None else "response"))
        got_thinking = _text(source.get("thinking"))
    content = got_content if content is None else content
    thinking = got_thinking if thinking is None else thinking
    if reason != "length" or content.strip():
        return None
    thinks = bool(thinking.strip()) or "thinking" in set(capabilities or ())
    if not thinks:
        return None
    return {"api": api, "finish_reason": reason, "content": content,
            "thinking_chars": len(thinking), "thinking_seen": bool(thinking.strip()),
            "budget": budget}


def thinking_finding(seen: Mapping[str, Any], model: str, *,
                     fixed_by_none: bool | None = None) -> Finding:
    """The finding for ``thinking_exhausted``'s evidence, with the options that fix it."""
    budget = seen.get("budget")
    openai = seen.get("api") == "openai"
    knob = "max_tokens" if openai else "num_predict"
    limit = f"{knob}={budget}" if budget is not None else f"the {knob} limit"
    conclusive = budget is None or budget >= CONCLUSIVE_BUDGET
    message = (f"{model} is a reasoning model: it spent the whole budget ({limit}) thinking and "
               "returned empty content with "
               f"{'finish_reason' if openai else 'done_reason'}: \"length\".")
    if not conclusive:
        message += (" (A call this small always ends so; calls with a small budget will too.)")
    off = ('"reasoning_effort": "none"' if openai else '"think": false')
    fix = [FixStep(f"Turn thinking off for calls that need a short answer: {off}"
                   + (" (tried: the answer then has content)." if fixed_by_none else "."),
                   (f'{{"model": "{model}", "messages": [...], {off}}}',), kind="json"),
           FixStep(f"Or give the call room to think and answer: a larger {knob} "
                   f"(several hundred to a few thousand tokens), or leave it unset.",
                   (f'{{"model": "{model}", "messages": [...], '
                    + (f'"max_tokens": {max(4 * int(budget or BUDGET), 1024)}}}' if openai else
                       f'"options": {{"num_predict": {max(4 * int(budget or BUDGET), 1024)}}}}}'
                       ),), kind="json")]
    evidence = {**dict(seen), "model": model}
    if fixed_by_none is not None:
        evidence["thinking_off_gives_content"] = fixed_by_none
    # code 200: the call "succeeds"; the answer is empty (no error status is ever sent)
    return Finding(THINKING_CAUSE, Severity.WARNING if conclusive else Severity.INFO, message,
                   evidence, fix, Confidence.HIGH if seen.get("thinking_seen")
                   else Confidence.MEDIUM, code=200)


# ---- the probe ---------------------------------------------------------------------------------


def base_url(ctx: Context) -> str:
    """The client's base URL: the target's own path when it has one, or when the URL is the
    one an OpenAI client reads as its base (``OPENAI_BASE_URL``, or the URL its pasted error
    shows: then an empty path is what it calls, the missing ``/v1``); else ``root/v1``."""
    literal = ctx.target.source in ("OPENAI_BASE_URL",) or (
        ctx.target.source == "error-text" and ctx.client.base_path == "/v1")
    if ctx.target.path or literal:
        return ctx.target.base_url.rstrip("/")
    return ctx.target.root_url + "/v1"


def implied(target_path: str, client_base_path: str) -> bool:
    """Whether ``--v1`` is implied: an OpenAI client, or a target whose base path is /v1."""
    return client_base_path == "/v1" or base_path_kind(target_path) == "openai"


class _Calls:
    def __init__(self, ctx: Context, base: str) -> None:
        self.ctx, self.base = ctx, base
        self.headers = ctx.client_headers(with_origin=False)
        self.root = ctx.target.root_url
        self.made: list[str] = []

    def __call__(self, method: str, url: str, body: Any = None) -> net.HttpReply:
        path = url[len(self.root):] if url.startswith(self.root) else url
        self.made.append(f"{method} {path}")
        extra: dict[str, Any] = {}
        if body is not None:
            # A completion's headers come after a model load (and, not streamed, after the
            # whole answer): that wait is bounded by --load-timeout and excused by the runner
            # (net.set_policy), as warm-up's is.
            extra["timeout"] = self.ctx.options.load_timeout
            extra["connect_timeout"] = self.ctx.op_timeout()
        return self.ctx.http(method, url, headers=self.headers, json_body=body,
                             max_bytes=MAX_BYTES, **extra)


def run(ctx: Context) -> Outcome:
    return ctx.on_path(_run(ctx))


def _run(ctx: Context) -> Outcome:
    base = base_url(ctx)
    call = _Calls(ctx, base)
    facts: dict[str, Any] = {"base_url": base, "requests": call.made, "api_key": _key(ctx)}
    findings: list[Finding] = []
    models = call("GET", base + "/models")
    facts["models"] = {"request": f"GET {base}/models", "answer": models.describe()}
    if not models.ok:
        return _models_failed(ctx, call, base, models, facts, findings)
    ids = _ids(models.json())
    facts["models"]["ids"] = ids[:50]
    model = ctx.options.model or (ids[0] if ids else None)
    facts["model"] = model
    if model is None:
        return Outcome(Status.WARN, f"GET {base}/models lists no model; nothing to call", facts)
    plain = _chat(call, base, model, {"max_tokens": 1})
    facts["chat"] = _summary(plain)
    if not plain.ok:
        _chat_failed(ctx, plain, base, model, ids, findings, "a one-token chat completion")
        return Outcome.from_findings(f"POST {base}/chat/completions failed: "
                                     f"{_said(plain)}", facts, findings)
    streamed = _chat(call, base, model, {"max_tokens": 1, "stream": True})
    sse = _read_sse(streamed.text) if streamed.ok else None
    facts["chat_stream"] = {**_summary(streamed), **(sse or {})}
    if streamed.ok and sse is not None and not sse["done"]:
        findings.append(Finding(
            "server-error", Severity.WARNING,
            f"The streamed chat completion from {base} did not end with `data: [DONE]`"
            + (f": {sse['error']}" if sse.get("error") else "."),
            {"stream": facts["chat_stream"]}, confidence=Confidence.MEDIUM))
    elif not streamed.ok:
        _chat_failed(ctx, streamed, base, model, ids, findings, "a streamed chat completion")
    _reasoning(call, base, model, plain, facts, findings)
    if "tools" in ctx.options.needs:
        tools = _chat(call, base, model, {"max_tokens": BUDGET, "tools": [TOOL]})
        facts["tools"] = _summary(tools)
        if not tools.ok:
            _chat_failed(ctx, tools, base, model, ids, findings, "a chat completion with tools")
    summary = f"{len(call.made)} calls under {base} as an OpenAI client: " + (
        "all answered" if not findings else f"{len(findings)} problem(s)")
    if facts["api_key"].get("advice"):
        summary += "; OPENAI_API_KEY is unset (the SDK needs any non-empty api_key)"
    return Outcome.from_findings(summary, facts, findings)


def _key(ctx: Context) -> dict[str, Any]:
    openai = ctx.client.base_path == "/v1"
    given = bool(ctx.env.get("OPENAI_API_KEY", "")) if openai else None
    out: dict[str, Any] = {"note": KEY_NOTE, "required_by_client": openai}
    if openai:
        out["OPENAI_API_KEY_set"] = given
        if not given:
            out["advice"] = ("OPENAI_API_KEY is not set here: unless the app passes api_key, "
                             "the SDK fails before sending anything. Set it to any string.")
    return out


def _ids(data: Any) -> list[str]:
    if not isinstance(data, dict) or data.get("object") != "list":
        return []
    items = data.get("data") or []
    return [str(i["id"]) for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]


def _chat(call: _Calls, base: str, model: str, extra: dict[str, Any]) -> net.HttpReply:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}
    return call("POST", base + "/chat/completions", body)


def _summary(reply: net.HttpReply) -> dict[str, Any]:
    out: dict[str, Any] = {"request": f"{reply.method} {reply.url}", "answer": reply.describe()}
    if not reply.ok:
        out["body"] = reply.snippet(300)
    return out


def _said(reply: net.HttpReply) -> str:
    message = reply.error_message()
    return f"{reply.describe()} {message}" if message else reply.describe()


def _read_sse(text: str) -> dict[str, Any]:
    """Gather a /v1 SSE answer: content, reasoning, finish_reason, [DONE], an error event."""
    content, reasoning, finish, done, error, events = "", "", None, False, None, 0
    for line in text.splitlines():
        if not line.startswith("data: "):
            continue
        data = line[6:].strip()
        events += 1
        if data == "[DONE]":
            done = True
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
            error = str(obj["error"].get("message", ""))
            continue
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            delta = choices[0].get("delta") or {}
            if isinstance(delta, dict):
                content += _text(delta.get("content"))
                reasoning += _text(delta.get("reasoning"))
            finish = choices[0].get("finish_reason") or finish
    return {"events": events, "done": done, "finish_reason": finish, "content": content,
            "reasoning_chars": len(reasoning), "error": error}


def _models_failed(ctx: Context, call: _Calls, base: str, reply: net.HttpReply,
                   facts: dict[str, Any], findings: list[Finding]) -> Outcome:
    kind = base_path_kind(ctx.target.path)
    if reply.status == 404 and kind != "openai":
        right = ctx.target.root_url + "/v1"
        check = call("GET", right + "/models")
        facts["models_under_v1"] = {"request": f"GET {right}/models", "answer": check.describe()}
        works = check.ok and bool(isinstance(check.json(), dict))
        shown = base or ctx.target.root_url
        findings.append(Finding(
            "wrong-base-path", Severity.ERROR,
            f"An OpenAI client with base URL {shown} calls {shown}/models and gets "
            f"404 {reply.snippet(60)!r}: Ollama's OpenAI-compatible API is under /v1"
            + (f" ({right}/models answers)." if works else "."),
            {"base_url": shown, "models": reply.to_evidence(),
             "under_v1": check.to_evidence(body=False)},
            [FixStep(f"Give the OpenAI client the base URL {right} (the server stays "
                     f"{ctx.target.root_url}).",
                     (f'OpenAI(base_url="{right}", api_key="ollama")',
                      f"export OPENAI_BASE_URL={right}"), kind="python")],
            Confidence.HIGH if works else Confidence.MEDIUM, code=404))
        return Outcome.from_findings(f"GET {base}/models answered 404: the base URL lacks /v1",
                                     facts, findings)
    facts["models"]["body"] = reply.snippet(300)
    if reply.status in (401, 403) or reply.error is not None:
        # credentials and transport are the auth and reachability probes' to explain
        summary = f"GET {base}/models: {_said(reply)}"
        if reply.status == 401:  # Ollama never asks: something in front of it does
            summary += (" — an OpenAI client sends its api_key as `Authorization: Bearer`; "
                        "Ollama ignores it, but the proxy in front checks it: pass its token "
                        "as api_key")
        return Outcome(Status.WARN, summary, facts)
    if reply.status is not None and reply.status >= 500:
        findings.append(Finding(_server_cause(reply, reply.snippet(300)), Severity.ERROR,
                                f"GET {base}/models answered {_said(reply)}",
                                {"models": reply.to_evidence()}, code=reply.status))
        return Outcome.from_findings(f"GET {base}/models failed", facts, findings)
    return Outcome(Status.WARN, f"GET {base}/models answered {_said(reply)}", facts)


def _server_cause(reply: net.HttpReply, message: str) -> str:
    """A 5xx read the way every other reader reads it: Ollama's own words first (the one table,
    ``ollama_messages``: a runner crash, out of memory, a load timeout), then who answered — a
    502/504 page that is not Ollama's JSON comes from a gateway in front."""
    from ollama_doctor import ollama_messages

    cause = ollama_messages.classify(message)
    if cause is not None:
        return cause
    if reply.status in (502, 504) and reply.error_message() is None:
        return "bad-gateway" if reply.status == 502 else "gateway-timeout"
    return "server-error"


def _chat_failed(ctx: Context, reply: net.HttpReply, base: str, model: str, ids: list[str],
                 findings: list[Finding], what: str) -> None:
    message = reply.error_message() or reply.snippet(200)
    data = reply.json()
    err = data.get("error") if isinstance(data, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    evidence = {"call": what, "reply": reply.to_evidence(), "error_type": kind}
    if reply.status == 404 and ("not found" in message):
        close = modelname.suggest(model, ids)
        hint = (f"did you mean {' or '.join(close)}?" if close else
                f"the ids {base}/models lists: {', '.join(ids[:8]) or 'none'}")
        findings.append(Finding(
            "model-not-found", Severity.ERROR,
            f"{what.capitalize()} with model {model!r} answered 404 {message!r} "
            f"({kind or 'no type'}): {hint}",
            {**evidence, "model": model, "listed": ids[:20], "suggestions": close},
            [FixStep("Use a model id exactly as GET /v1/models lists it"
                     + (f": {close[0]}." if close else ", or pull the model."),
                     (f"ollama pull {model}",) if not close else ())], code=404))
    elif reply.status == 400 and "does not support" in message:
        findings.append(Finding(
            "model-capability", Severity.ERROR,
            f"{what.capitalize()} with {model}: 400 {message!r}.",
            {**evidence, "model": model},
            [FixStep("Use a model with the capability (ollama show MODEL lists them), or "
                     "leave the parameter out for this model.", (f"ollama show {model}",))],
            code=400))
    elif reply.status is not None and reply.status >= 500:
        findings.append(Finding(_server_cause(reply, message), Severity.ERROR,
                                f"{what.capitalize()} with {model}: {reply.status} {message!r}.",
                                evidence, code=reply.status))
    elif reply.status is not None and reply.status not in (401, 403):
        findings.append(Finding("bad-request", Severity.WARNING,
                                f"{what.capitalize()} with {model}: {reply.status} "
                                f"{message!r}.", evidence, confidence=Confidence.MEDIUM,
                                code=reply.status))


def _reasoning(call: _Calls, base: str, model: str, plain: net.HttpReply,
               facts: dict[str, Any], findings: list[Finding]) -> None:
    first = thinking_exhausted(plain.json(), budget=1)
    if first is None:
        return
    facts["reasoning"] = {"one_token_call": first}
    again = _chat(call, base, model, {"max_tokens": BUDGET})
    data = again.json()
    seen = thinking_exhausted(data, budget=BUDGET) if again.ok else None
    facts["reasoning"]["budget_call"] = {**_summary(again), "max_tokens": BUDGET,
                                         "ran_out": seen is not None}
    if seen is None:
        return
    off = _chat(call, base, model, {"max_tokens": BUDGET, "reasoning_effort": "none"})
    off_data = off.json()
    fixed = bool(off.ok and isinstance(off_data, dict)
                 and thinking_exhausted(off_data, budget=BUDGET) is None
                 and _content(off_data).strip())
    facts["reasoning"]["thinking_off_call"] = {**_summary(off), "content": fixed}
    findings.append(thinking_finding(seen, model, fixed_by_none=fixed))


def _content(data: dict[str, Any]) -> str:
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return _text(message.get("content"))
    return ""
