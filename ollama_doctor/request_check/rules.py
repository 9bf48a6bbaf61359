"""The request checker's rules, endpoints and limits (data), and the README's rules table."""

from __future__ import annotations

from ollama_doctor.apifields import ollama_version

ENDPOINTS = (
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/api/show",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
)
CHARS_PER_TOKEN = 4  # the estimate: about four characters of English text per token
MAX_BODY_BYTES = 8 * 1024 * 1024  # larger bodies are refused before parsing


# Every rule: (id, Ollama's answer — a status or "silent", what it catches). The README's rules
# table is generated from this (``rules_markdown``).
RULES: tuple[tuple[str, str, str], ...] = (
    ("empty-body", "400", "an empty body: `missing request body`"),
    ("not-json", "400", "invalid JSON: Go's syntax error (`invalid character '}' …`)"),
    ("not-object", "400", "JSON that is not an object"),
    ("wrong-type", "400", "a field of the wrong JSON type (`\"stream\": \"false\"`): Go's "
                          "`json: cannot unmarshal …` message"),
    ("keep-alive", "400", "`keep_alive` without a unit (`\"300\"`), with a bad unit, or "
                          "not a number/string"),
    ("think-value", "400", "`think` neither true/false nor low/medium/high/max"),
    ("image-not-base64", "400", "an image that is not plain base64 (a `data:` URL): `illegal "
                                "base64 data at input byte N`"),
    ("top-logprobs", "400", "`top_logprobs` outside 0–20"),
    ("model-missing", "400/404", "no model (`model is required`, or `model '' not found` on "
                                 "generate/embed)"),
    ("raw-conflict", "400", "`raw` with template, system or context"),
    ("think-capability", "400", "`think` on a model without the thinking capability"),
    ("tools-capability", "400", "`tools` on a model without the tools capability"),
    ("insert-capability", "400", "`suffix` on a model without the insert capability"),
    ("completion-capability", "400", "generate/chat on an embedding model"),
    ("option-type", "500", "an option of the wrong type (`\"temperature\": \"0.7\"`): "
                           "fails when the model is scheduled"),
    ("format-invalid", "500", "`format` neither \"json\" nor a JSON schema object: fails after "
                              "the model loaded"),
    ("embed-input", "400", "embedding input that is not a string or list of strings (or "
                           "missing on /v1)"),
    ("embed-too-long", "400", "an embedding input longer than the context with `truncate: "
                              "false` (estimate)"),
    ("messages-empty", "400", "/v1/chat/completions without messages"),
    ("message-content", "400", "/v1 message content neither a string nor a list of parts"),
    ("image-url", "400", "/v1 image given by http(s) URL instead of a data URL"),
    ("reasoning-effort", "400", "/v1 reasoning effort Ollama does not map"),
    ("stop-type", "400", "/v1/completions `stop` list with a non-string"),
    ("encoding-format", "400", "/v1/embeddings `encoding_format` other than float/base64"),
    ("unknown-field", "silent", "an unknown or misspelt field (`max_tokens` on /api/generate, "
                                "`option`): ignored; the right name is suggested"),
    ("unknown-option", "silent", "an unknown key in `options`: ignored (logged as `invalid "
                                 "option provided`)"),
    ("server-setting", "silent", "a server setting sent as an option (`num_parallel`): ignored; "
                                 "the OLLAMA_* variable is named"),
    ("runner-option", "silent", "a load-time option (`num_gpu`, `num_batch`, …): a differing "
                                "value reloads the model"),
    ("num-ctx-too-large", "silent", "`num_ctx` above the model's context: capped"),
    ("prompt-too-long", "silent", "a prompt longer than the context (estimate, chars/4): "
                                  "truncated, or oldest messages dropped"),
    ("embed-truncated", "silent", "an embedding input longer than the context: its end is cut"),
    ("message-role", "silent", "a message role other than system/user/assistant/tool"),
    ("vision-capability", "silent", "images for a model without vision: not checked by Ollama "
                                    "v0.33, the model never sees them"),
    ("not-embedding-model", "silent", "embeddings from a model without the embedding "
                                      "capability"),
    ("unload", "silent", "an empty prompt with `keep_alive: 0`: unloads, generates nothing"),
    ("response-format", "silent", "/v1 `response_format` type other than json_object/"
                                  "json_schema: ignored"),
)


def rules_markdown() -> str:
    """The README's table of request rules."""
    lines = [f"Request rules (Ollama v{ollama_version()}):", "",
             "| Rule | Ollama answers | Catches |", "|---|---|---|"]
    lines += [f"| `{rule}` | {answer} | {what} |" for rule, answer, what in RULES]
    return "\n".join(lines)


class RequestCheckError(ValueError):
    """Input the checker cannot work with (unknown endpoint, unreadable file)."""
