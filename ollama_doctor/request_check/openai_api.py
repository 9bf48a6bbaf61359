"""The OpenAI-compatible layer's checks (``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``) after the body decoded: the middleware's own 400s (``middleware/openai.go``
``ChatMiddleware``, ``CompletionsMiddleware``, ``EmbeddingsMiddleware``; ``openai/openai.go``
``FromChatRequest``, ``FromCompleteRequest``, v0.33), then the native handler's model and
capability checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ollama_doctor.apifields import table
from ollama_doctor.godecode import go_type_name
from ollama_doctor.request_check.findings import Builder, ModelFacts
from ollama_doctor.request_check.native import embed_input, full_name


def check_openai(values: dict[str, Any], ep: str, out: Builder, facts: ModelFacts) -> None:
    """The middleware's checks for ``ep``, then the handler's, in Ollama's order."""
    if not _ENDPOINT_CHECKS[ep](values, out):
        return
    name = str(values.get("model") or "")
    if not name:
        status, message = table()["endpoints"][ep]["missing_model"]
        out.reject("model-missing", status, message, "handler", field_name="model",
                   cause="model-not-found" if status == 404 else "bad-request",
                   text="The body names no model.", fix='Add "model": "NAME".')
    if ep == "/v1/embeddings" and values.get("input") not in (None, []):
        embed_input(values.get("input"), out)
    if ep == "/v1/chat/completions":
        _chat_capabilities(values, name, out, facts.capabilities)
    _format_openai(values, ep, out)


def _chat_checks(values: dict[str, Any], out: Builder) -> bool:
    """``ChatMiddleware``: messages, then ``FromChatRequest``'s content and reasoning checks.
    False when the middleware stops before the handler (no messages)."""
    messages = values.get("messages")
    if not messages:
        out.reject("messages-empty", 400, "[] is too short - 'messages'", "handler",
                   field_name="messages", text="`messages` is missing or empty.",
                   fix='Send at least one message: [{"role": "user", "content": "…"}].')
        return False
    _openai_messages(messages, out)
    _reasoning_effort(values, out)
    return True


def _reasoning_effort(values: dict[str, Any], out: Builder) -> None:
    effort = values.get("reasoning_effort")
    reasoning = values.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        effort = reasoning["effort"]
    efforts: list[str] = table()["reasoning_efforts"]
    if not isinstance(effort, str) or not effort or effort in efforts:
        return
    allowed = ", ".join(f'"{e}"' for e in efforts[:-1])
    message = f'invalid reasoning value: {json.dumps(effort)} (must be {allowed}, or "none")'
    out.reject("reasoning-effort", 400, message, "handler", field_name="reasoning_effort",
               text=f"reasoning effort {effort!r} is not one Ollama maps.",
               fix="Use minimal, low, medium, high, xhigh or none.")


def _completion_checks(values: dict[str, Any], out: Builder) -> bool:
    """``FromCompleteRequest``: every ``stop`` entry must be a string."""
    stop = values.get("stop")
    bad = [item for item in stop if not isinstance(item, str)] if isinstance(stop, list) else []
    if bad:
        out.reject("stop-type", 400, f"invalid type for 'stop' field: {go_type_name(bad[0])}",
                   "handler", field_name="stop", text="`stop` holds a non-string.",
                   fix="Send stop sequences as strings.")
    return True


def _embedding_checks(values: dict[str, Any], out: Builder) -> bool:
    """``EmbeddingsMiddleware``: the encoding format, then the input."""
    fmt = values.get("encoding_format")
    if isinstance(fmt, str) and fmt and fmt.lower() not in ("float", "base64"):
        out.reject("encoding-format", 400,
                   f"Invalid value for 'encoding_format' = {fmt}. Supported values: "
                   "['float', 'base64'].", "handler", field_name="encoding_format",
                   text=f"`encoding_format` {fmt!r} is not float or base64.",
                   fix='Use "float" or "base64".')
    if values.get("input") is None or values.get("input") == []:
        out.reject("embed-input", 400, "invalid input", "handler", field_name="input",
                   text="`input` is missing or empty.",
                   fix='Send "input": "text" or a list of strings.')
    return True


_ENDPOINT_CHECKS: dict[str, Callable[[dict[str, Any], Builder], bool]] = {
    "/v1/chat/completions": _chat_checks,
    "/v1/completions": _completion_checks,
    "/v1/embeddings": _embedding_checks,
}


def _chat_capabilities(values: dict[str, Any], name: str, out: Builder,
                       caps: tuple[str, ...] | None) -> None:
    if caps is None:
        return
    if "completion" not in caps:
        out.reject("completion-capability", 400, f"{json.dumps(name)} does not support chat",
                   "schedule", field_name="model", cause="model-capability",
                   text="The model cannot chat (an embedding model?).",
                   fix="Use /v1/embeddings for an embedding model.")
    elif values.get("tools") and "tools" not in caps:
        out.reject("tools-capability", 400, f"{full_name(name)} does not support tools",
                   "schedule", field_name="tools", cause="model-capability",
                   text="The call sends tools, but the model cannot call tools.",
                   fix="Drop `tools`, or use a model with the tools capability.")


def _openai_messages(messages: Any, out: Builder) -> None:
    roles = set(table()["roles"])
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            out.reject("message-content", 400,
                       f"invalid message content type: {go_type_name(content)}", "handler",
                       field_name=f"messages[{i}].content",
                       text=f"messages[{i}].content is neither a string nor a list of parts.",
                       fix="Send content as a string, or as [{\"type\": \"text\", …}].")
        if isinstance(content, list):
            for part in content:
                url = part.get("image_url") if isinstance(part, dict) else None
                url = url.get("url") if isinstance(url, dict) else url
                if isinstance(url, str) and url.startswith(("http://", "https://")):
                    out.reject("image-url", 400, "image URLs are not currently supported, "
                               "please use base64 encoded data instead", "handler",
                               field_name=f"messages[{i}].content",
                               text="An image is given by URL; Ollama needs the bytes.",
                               fix="Send a data URL: data:image/png;base64,….")
        role = message.get("role")
        if isinstance(role, str) and role.lower() not in roles:
            out.silent("message-role", "accepted; the template usually drops it",
                       field_name=f"messages[{i}].role",
                       text=f"messages[{i}] has role {role!r}, which no template knows.",
                       fix="Use system, user, assistant or tool "
                           "(\"developer\" is not mapped by Ollama v0.33).")


def _format_openai(values: dict[str, Any], ep: str, out: Builder) -> None:
    fmt = values.get("response_format")
    if ep != "/v1/chat/completions" or not isinstance(fmt, dict):
        return
    kind = str(fmt.get("type", "")).strip().lower()
    if kind not in ("json_object", "json_schema", "text", ""):
        out.silent("response-format", "ignored: only json_object and json_schema are read",
                   field_name="response_format.type",
                   text=f"response_format type {kind!r} is not one Ollama reads.",
                   fix='Use {"type": "json_object"} or {"type": "json_schema", …}.')
