"""The native API's checks (``/api/generate``, ``/api/chat``, ``/api/embed``,
``/api/embeddings``, ``/api/show``) after the body decoded: the handler's own 400s, the
capability checks, ``options`` (``api.Options.FromMap``), ``format`` and context truncation.
Rules for Ollama v0.33.0 (``server/routes.go``, ``server/sched.go``, ``server/prompt.go``)."""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

from ollama_doctor import modelname
from ollama_doctor import remedies as R
from ollama_doctor.apifields import table
from ollama_doctor.godecode import keep_alive_seconds
from ollama_doctor.request_check.findings import Builder, ModelFacts
from ollama_doctor.request_check.rules import CHARS_PER_TOKEN
from ollama_doctor.result import Severity


def _options_checks(options: Any, ep: str, out: Builder) -> tuple[str, str] | None:
    """Unknown and server-side options (silent); the first type error (500 when scheduled)."""
    if not isinstance(options, dict):
        return None
    known: dict[str, list[str]] = table()["options"]
    server: dict[str, str] = table()["server_settings"]
    first: tuple[str, str] | None = None
    for key, value in options.items():
        if key not in known:
            if key in server:
                where = server[key]
                out.silent("server-setting", f"ignored; logged as `invalid option provided` "
                           f"option={key}", field_name=f"options.{key}",
                           text=f"`options.{key}` is a server setting, not a request option: "
                                "Ollama ignores it.",
                           cause="setting-not-applied",
                           fix=f"Set it where the server starts: {where}.",
                           commands=(R.systemd_edit(where, _setting_value(key, value)),
                                     R.serve_with(where, _setting_value(key, value)))
                           if where.startswith("OLLAMA_") else ())
                continue
            hint = difflib.get_close_matches(key.lower(), list(known), n=1, cutoff=0.75)
            out.silent("unknown-option", f"ignored; logged as `invalid option provided` "
                       f"option={key}", field_name=f"options.{key}",
                       text=f"`options.{key}` is not an option Ollama knows: it is ignored.",
                       fix=f"Use `options.{hint[0]}`." if hint else "Remove it.",
                       extra={"suggestion": f"options.{hint[0]}" if hint else None})
            continue
        gotype, group = known[key]
        error = _option_type_error(key, gotype, value)
        if error and first is None:
            first = (key, error)
        if group == "runner" and not error and key != "num_ctx":
            out.silent("runner-option", "accepted; a value that differs from the loaded "
                       "model's reloads it", field_name=f"options.{key}",
                       text=f"`options.{key}` is fixed when the model loads: a call with another "
                            "value (or none) reloads the model.",
                       cause="reload-churn", severity=Severity.INFO,
                       fix="Send the same value from every client, or leave it to the server "
                           "(CUDA_VISIBLE_DEVICES, OLLAMA_GPU_OVERHEAD, OLLAMA_SCHED_SPREAD).")
    return first


def _option_type_error(key: str, gotype: str, value: Any) -> str | None:
    """``api.Options.FromMap``'s error for one value, or ``None``."""
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if gotype in ("int", "*int"):
        return None if number else f"option {json.dumps(key)} must be of type integer"
    if gotype in ("bool", "*bool"):
        ok = isinstance(value, bool)
        return None if ok else f"option {json.dumps(key)} must be of type boolean"
    if gotype == "float32":
        return None if number else f"option {json.dumps(key)} must be of type float32"
    if gotype == "[]string":
        if not isinstance(value, list):
            return f"option {json.dumps(key)} must be of type array"
        if not all(isinstance(v, str) for v in value):
            return f"option {json.dumps(key)} must be of an array of strings"
    return None


def _model_name(values: dict[str, Any], ep: str) -> str:
    if ep == "/api/show":
        return str(values.get("name") or values.get("model") or "")
    return str(values.get("model") or "")


def full_name(name: str) -> str:
    parsed = modelname.parse(name)
    return f"{parsed.host}/{parsed.namespace}/{parsed.model}:{parsed.tag}"


def check_native(values: dict[str, Any], ep: str, out: Builder, facts: ModelFacts) -> None:
    """The native handlers' checks, in the order ``server/routes.go`` makes them."""
    spec = table()["endpoints"][ep]
    caps = facts.capabilities
    name = _model_name(values, ep)
    top = values.get("top_logprobs")
    native_gen = ep in ("/api/generate", "/api/chat")
    if native_gen and isinstance(top, (int, float)) and not 0 <= top <= 20:
        out.reject("top-logprobs", 400, "top_logprobs must be between 0 and 20", "handler",
                   field_name="top_logprobs", text="`top_logprobs` is outside 0–20.",
                   fix="Use a value from 0 to 20.")
    if not name:
        status, message = spec["missing_model"]
        out.reject("model-missing", status, message, "handler", field_name="model",
                   text="The body names no model.",
                   cause="model-not-found" if status == 404 else "bad-request",
                   fix='Add "model": "NAME" with a name `ollama list` shows.',
                   commands=(R.list_models(),))
    if ep == "/api/show":
        return
    if ep == "/api/embed":  # EmbedHandler checks the input's type after the model reference
        embed_input(values.get("input"), out)
    chat = ep == "/api/chat"
    empty = not (values.get("messages") if chat else values.get("prompt"))
    keep = values.get("keep_alive")
    if ep in ("/api/generate", "/api/chat"):
        if empty and keep_alive_seconds(keep) == 0:
            out.silent("unload", 'answered 200 with done_reason "unload": the model is '
                       "unloaded, nothing is generated", field_name="keep_alive",
                       text="An empty prompt with keep_alive 0 unloads the model.",
                       severity=Severity.INFO,
                       fix="Send a prompt (or messages) to generate; this body only unloads.")
            return
        if ep == "/api/generate" and values.get("raw") and (
                values.get("template") or values.get("system") or values.get("context")):
            out.reject("raw-conflict", 400,
                       "raw mode does not support template, system, or context", "handler",
                       field_name="raw", text="`raw` cannot be combined with template, system "
                                              "or context.",
                       fix="Drop `raw`, or put the whole formatted prompt in `prompt` alone.")
        _think(values, name, out, caps)
        _capabilities(values, ep, name, out, caps)
        _message_checks(values, out, caps)
    elif caps is not None and ep in ("/api/embed", "/api/embeddings") and \
            "embedding" not in caps:
        out.silent("not-embedding-model", "a completion model computes the vectors from its "
                   "hidden states; they are poor for retrieval", field_name="model",
                   text="The model has no `embedding` capability.", cause="model-capability",
                   fix="Use an embedding model (e.g. nomic-embed-text).")
    first_option = _options_checks(values.get("options"), ep, out)
    if first_option is not None:
        key, error = first_option
        out.reject("option-type", 500, error, "schedule", field_name=f"options.{key}",
                   text=f"`options.{key}` has the wrong JSON type: Ollama fails the call with "
                        "500 when it schedules the model (not 400).",
                   fix=f"Send `options.{key}` as a JSON {_option_hint(key)}.")
    ctx = _num_ctx(values.get("options"), out, facts)
    if ep in ("/api/generate", "/api/chat") and not empty:
        _format(values.get("format"), ep, out)
        _truncation(values, ep, out, ctx)
    if ep == "/api/embed":
        _embed_length(values, out, ctx)


def _option_hint(key: str) -> str:
    gotype = table()["options"][key][0]
    return {"int": "whole number", "*int": "whole number", "float32": "number",
            "*bool": "true/false", "bool": "true/false",
            "[]string": "array of strings"}.get(gotype, "value")


def embed_input(value: Any, out: Builder) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return
    out.reject("embed-input", 400, "invalid input type", "handler", field_name="input",
               text="`input` must be a string or an array of strings.",
               fix='Send "input": "text" or "input": ["text", …].')


def _think(values: dict[str, Any], name: str, out: Builder,
           caps: tuple[str, ...] | None) -> None:
    think = values.get("think")
    wants = think is True or (isinstance(think, str) and think in table()["think_levels"])
    if caps is None or not wants or "thinking" in caps:
        return
    out.reject("think-capability", 400, f"{json.dumps(name)} does not support thinking",
               "handler", field_name="think", cause="model-capability",
               text="`think` is on, but the model cannot think.",
               fix="Drop `think` (or send false), or use a thinking model.",
               commands=(R.show(name),))


def _capabilities(values: dict[str, Any], ep: str, name: str, out: Builder,
                  caps: tuple[str, ...] | None) -> None:
    if caps is None:
        return
    chat = ep == "/api/chat"
    if "completion" not in caps:
        what = "chat" if chat else "generate"
        out.reject("completion-capability", 400, f"{json.dumps(name)} does not support {what}",
                   "schedule", field_name="model", cause="model-capability",
                   text=f"The model cannot {what} (an embedding model?).",
                   fix="Use /api/embed for an embedding model, or a chat model here.")
        return
    wanted = ["tools"] if chat and values.get("tools") else []
    if not chat and values.get("suffix"):
        wanted.append("insert")
    missing = [cap for cap in wanted if cap not in caps]
    if missing:
        # CheckCapabilities: "%s %w" of the full name and errors.Join (newline-separated).
        message = f"{full_name(name)} does not support " + "\n".join(missing)
        field_name = "tools" if "tools" in missing else "suffix"
        out.reject(f"{missing[0]}-capability", 400, message, "schedule", field_name=field_name,
                   cause="model-capability",
                   text=f"The call needs `{missing[0]}`, which the model lacks.",
                   fix=f"Drop `{field_name}`, or use a model with the {missing[0]} capability.",
                   commands=(R.show(name),))


def _message_checks(values: dict[str, Any], out: Builder,
                    caps: tuple[str, ...] | None) -> None:
    roles = set(table()["roles"])
    messages = values.get("messages")
    images = bool(values.get("images"))
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if isinstance(role, str) and role.lower() not in roles:
                hint = difflib.get_close_matches(role.lower(), sorted(roles), n=1, cutoff=0.5)
                out.silent("message-role", "accepted; the model's template renders only "
                           "system, user, assistant and tool messages, so this one is "
                           "usually dropped", field_name=f"messages[{i}].role",
                           text=f"messages[{i}] has role {role!r}, which no template knows.",
                           fix=f"Use role {hint[0]!r}." if hint else
                           "Use system, user, assistant or tool.",
                           extra={"suggestion": hint[0] if hint else None})
            images = images or bool(message.get("images"))
    if images and caps is not None and "vision" not in caps:
        out.silent("vision-capability", "accepted: Ollama v0.33 does not check the vision "
                   "capability; a model without a vision projector never sees the image",
                   field_name="images", cause="model-capability",
                   text="The call sends images, but the model has no vision capability.",
                   fix="Use a vision model (`ollama show MODEL` lists `vision`).")


def _format(value: Any, ep: str, out: Builder) -> None:
    if value is None or value == "" or value == "json" or isinstance(value, dict):
        return
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    quoted = json.dumps(raw, ensure_ascii=False)
    message = f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'
    out.reject("format-invalid", 500, message, "after-load", field_name="format",
               text='`format` is neither "json" nor a JSON schema object; Ollama loads the '
                    "model first, then fails with 500.",
               fix='Send "format": "json", or a JSON schema object such as '
                   '{"type": "object", "properties": {…}}.')


def _num_ctx(options: Any, out: Builder, facts: ModelFacts) -> int:
    default = facts.num_ctx or 4096
    if not isinstance(options, dict):
        return min(default, facts.context_length) if facts.context_length else default
    value = options.get("num_ctx")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return min(default, facts.context_length) if facts.context_length else default
    num_ctx = int(value)
    if facts.context_length and num_ctx > facts.context_length:
        out.silent("num-ctx-too-large", f"capped to the model's context "
                   f"({facts.context_length} tokens)", field_name="options.num_ctx",
                   text=f"`options.num_ctx` {num_ctx} exceeds the model's trained context "
                        f"{facts.context_length}: Ollama uses {facts.context_length}.",
                   fix=f"Send at most {facts.context_length}, or a model with a longer context.",
                   extra={"num_ctx": num_ctx, "context_length": facts.context_length})
        return facts.context_length
    return num_ctx


def _prompt_chars(values: dict[str, Any], ep: str) -> int:
    if ep == "/api/chat":
        messages = values.get("messages")  # a wrong type was already answered 400
        return sum(len(str(message.get("content") or ""))
                   for message in (messages if isinstance(messages, list) else [])
                   if isinstance(message, dict))
    return len(str(values.get("prompt") or "")) + len(str(values.get("system") or ""))


def _truncation(values: dict[str, Any], ep: str, out: Builder, ctx: int) -> None:
    chars = _prompt_chars(values, ep)
    tokens = math.ceil(chars / CHARS_PER_TOKEN)
    if tokens <= ctx:
        return
    if ep == "/api/chat":
        behaviour = ("the oldest messages are dropped until the rest fits (the system message "
                     "and the last message are kept)")
    else:
        behaviour = ("the prompt is cut to the context: its first num_keep tokens and its end "
                     "are kept, the middle is dropped (`truncating input prompt` in the log)")
    out.silent("prompt-too-long", behaviour, field_name="messages" if ep == "/api/chat" else
               "prompt", cause="prompt-truncated",
               text=f"The prompt is about {tokens} tokens (an estimate: {chars} characters / "
                    f"{CHARS_PER_TOKEN}), more than the {ctx}-token context.",
               fix=f"Send `options.num_ctx` of at least {_round_up(tokens)}, or shorten the "
                   "prompt.",
               commands=(R.env_line("OLLAMA_CONTEXT_LENGTH", str(_round_up(tokens))),),
               estimate=True, extra={"tokens_estimate": tokens, "context": ctx})


def _setting_value(key: str, value: Any) -> str:
    """The request's value as the server setting's value when it means the same there
    (``num_parallel: 4`` → ``4``, ``flash_attention: true`` → ``1``), else ``VALUE``."""
    if isinstance(value, bool):
        return "VALUE" if key == "f16_kv" else str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.replace("_", "").replace(".", "").isalnum():
        return value
    return "VALUE"


def _round_up(tokens: int) -> int:
    size = 2048
    while size < tokens * 1.25:
        size *= 2
    return size


def _embed_length(values: dict[str, Any], out: Builder, ctx: int) -> None:
    value = values.get("input")
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    longest = max((len(t) for t in texts if isinstance(t, str)), default=0)
    tokens = math.ceil(longest / CHARS_PER_TOKEN)
    if tokens <= ctx:
        return
    if values.get("truncate") is False:
        out.reject("embed-too-long", 400, "the input length exceeds the context length",
                   "after-load", field_name="input", cause="prompt-truncated",
                   text=f"An input is about {tokens} tokens (estimate), more than the "
                        f"{ctx}-token context, and `truncate` is false.",
                   fix="Split the input into chunks, or let Ollama truncate it.")
        return
    out.silent("embed-truncated", "the input is cut to the context before embedding",
               field_name="input", cause="prompt-truncated", estimate=True,
               text=f"An input is about {tokens} tokens (estimate), more than the {ctx}-token "
                    "context: its end is not embedded.",
               fix="Split long inputs into chunks below the context length.")
