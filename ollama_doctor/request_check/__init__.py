"""Check a request body the way Ollama parses it, field by field, before it is sent.

``check_request(body, endpoint)`` is pure: it reads the JSON body a user's app sends to one of
``ENDPOINTS`` (guessed from the body when not given) and returns a :class:`RequestReport` whose
findings name, for every problem, either the exact answer Ollama gives (status and body) or what
Ollama silently does instead. ``prediction`` is the answer Ollama gives to the whole body: the
first rejection in the order its handler meets them, or ``None`` when it accepts the body.
``send(body, endpoint, base_url)`` replays the body (bounded) and compares the real answer with
the prediction.

The field table is one data file, ``ollama_doctor/data/api_fields.json``, matching Ollama
v0.33.0 (``api/types.go`` request structs, ``server/routes.go`` handlers, ``openai/openai.go``
and ``middleware/openai.go``). How Ollama reads a body (from that source):

- gin's ``ShouldBindJSON`` decodes with Go's ``encoding/json``: keys match case-insensitively,
  unknown keys are ignored without a word, ``null`` leaves the zero value, and the first type
  error is answered ``400`` with Go's own message (``json: cannot unmarshal string into Go
  struct field GenerateRequest.stream of type bool``). ``[]byte`` fields (images) are base64
  (``illegal base64 data at input byte N``); ``keep_alive`` and ``think`` have their own
  decoders (``api.Duration.UnmarshalJSON``, ``api.ThinkValue.UnmarshalJSON``).
- ``options`` is a free map, read later by ``api.Options.FromMap``: an unknown key only logs
  ``invalid option provided``; a value of the wrong type fails scheduling and is answered
  ``500 option "temperature" must be of type float32`` (``handleScheduleError`` default case).
- ``format`` is checked only when the runner receives the request, after the model loaded
  (``llm/llama_server.go`` ``Completion``): ``500 invalid format: …``.
- ``num_ctx`` above the model's trained context is capped to it (``sched.go``
  ``effectiveContext``); a prompt longer than the context is truncated (``truncating input
  prompt`` in the server log) or, for chat, its oldest messages are dropped (``prompt.go``
  ``chatPrompt``).

The package's modules: ``rules`` (the rules table, endpoints, limits), ``findings`` (the
report and its builder), ``body`` (syntax, field types, unknown keys), ``native`` and
``openai_api`` (the handlers' checks), ``check`` (the order), ``replay`` (input, plain text and
replay: the only I/O). Go's decoding rules are ``ollama_doctor.godecode``, shared with the
emulator; the field table is ``ollama_doctor.apifields``.

Cause ids emitted: ``bad-request``, ``model-capability``, ``model-not-found``,
``prompt-truncated``, ``reload-churn``, ``setting-not-applied``.
"""

from __future__ import annotations

from ollama_doctor.apifields import ollama_version, table
from ollama_doctor.godecode import go_base64_error, go_duration_error, keep_alive_seconds
from ollama_doctor.request_check.body import (
    Rejected,
    guess_endpoint,
    normalise_endpoint,
    parse_body,
)
from ollama_doctor.request_check.check import check_request
from ollama_doctor.request_check.findings import Answer, ModelFacts, RequestReport
from ollama_doctor.request_check.replay import Replay, as_text, load_body, send
from ollama_doctor.request_check.rules import (
    CHARS_PER_TOKEN,
    ENDPOINTS,
    MAX_BODY_BYTES,
    RULES,
    RequestCheckError,
    rules_markdown,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "ENDPOINTS",
    "MAX_BODY_BYTES",
    "RULES",
    "Answer",
    "ModelFacts",
    "Rejected",
    "Replay",
    "RequestCheckError",
    "RequestReport",
    "as_text",
    "check_request",
    "go_base64_error",
    "go_duration_error",
    "guess_endpoint",
    "keep_alive_seconds",
    "load_body",
    "normalise_endpoint",
    "ollama_version",
    "parse_body",
    "rules_markdown",
    "send",
    "table",
]
