"""The check: a body and an endpoint in, a :class:`RequestReport` out (pure).

Ollama meets a body in this order, and so does the check: JSON syntax (``body``), the
struct's field types, the keys it ignores, then the handler's own checks (``native`` or
``openai_api``). The first rejection is Ollama's answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ollama_doctor.apifields import ollama_version, table
from ollama_doctor.godecode import match_fields, not_object_error
from ollama_doctor.request_check.body import (
    Rejected,
    decode_fields,
    guess_endpoint,
    normalise_endpoint,
    parse_body,
    unknown_fields,
)
from ollama_doctor.request_check.findings import Builder, ModelFacts, RequestReport
from ollama_doctor.request_check.native import check_native
from ollama_doctor.request_check.openai_api import check_openai


def check_request(body: Any, endpoint: str | None = None, *,
                  capabilities: Iterable[str] | None = None,
                  context_length: int | None = None,
                  default_num_ctx: int | None = None) -> RequestReport:
    """Check ``body`` (parsed JSON, or its text/bytes) for ``endpoint``. Pure.

    ``capabilities`` (``/api/show``'s list), ``context_length`` (the model's trained context)
    and ``default_num_ctx`` (the server's default context, 4096 when unknown) enable the
    capability, ``num_ctx`` and truncation rules.
    """
    facts = ModelFacts(tuple(capabilities) if capabilities is not None else None,
                       context_length, default_num_ctx)
    obj: Any
    parse_error: Rejected | None = None
    if isinstance(body, (str, bytes)):
        try:
            obj = parse_body(body)
        except Rejected as rejected:
            parse_error, obj = rejected, None
    else:
        obj = body
    guessed = endpoint is None
    ep = guess_endpoint(obj) if endpoint is None else normalise_endpoint(endpoint)
    out = Builder(ep)
    if parse_error is not None:
        what = ("The body is empty." if parse_error.rule == "empty-body"
                else "The body is not valid JSON.")
        out.reject(parse_error.rule, 400, parse_error.message, "decode", field_name=None,
                   text=f"{what} Ollama answers 400 before looking at any field.",
                   fix="Send one JSON object, encoded with a JSON library rather than by hand.")
    else:
        _check(obj, ep, out, facts)
    return RequestReport(ep, guessed, out.findings, out.prediction, ollama_version())


def _check(obj: Any, ep: str, out: Builder, facts: ModelFacts) -> None:
    spec = table()["endpoints"][ep]
    struct, pkg = spec["struct"], "openai" if spec.get("openai") else "api"
    fields: dict[str, str] = spec["fields"]
    if obj is None:
        obj = {}  # a literal null body decodes to the zero struct
    if not isinstance(obj, dict):
        out.reject("not-object", 400,
                   not_object_error(obj, f"{pkg}.{struct}"),
                   "decode", field_name=None,
                   text="The body is JSON but not an object; Ollama answers 400.",
                   fix="Send one JSON object with the request's fields.")
        return
    decode_fields(obj, struct, fields, out)
    unknown_fields(obj, ep, fields, out)
    values = {name: value for name, value in match_fields(obj, fields) if value is not None}
    if ep.startswith("/v1/"):
        check_openai(values, ep, out, facts)
    else:
        check_native(values, ep, out, facts)
