"""An Ollama look-alike on a real TCP socket, with injectable faults.

The emulator speaks HTTP/1.1 itself (on ``asyncio.start_server``) so that every byte matches what
a real Ollama server (Go ``net/http`` + gin + gin-contrib/cors, v0.33) would send: no ``Server``
header, gin's plain-text 404/405 bodies, empty-body 403s from the CORS and Host-header checks,
chunked NDJSON streams, ``{"error": ...}`` JSON errors, nanosecond durations, and Ollama-format
log lines (slog text lines and ``[GIN]`` access lines). See ``docs/ollama-wire.md``.

Emulated endpoints: ``GET|HEAD /``, ``GET|HEAD /api/version``, ``GET|HEAD /api/tags``,
``GET /api/ps``, ``GET /api/status``, ``POST /api/show``, ``POST /api/generate``,
``POST /api/chat``, ``POST /api/embed``, ``POST /api/embeddings``, ``POST /api/pull``,
``GET /v1/models``, ``GET /v1/models/{model}``, ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/embeddings``. Ollama's other routes exist for routing
(405, redirects) but answer ``501`` JSON. Models are loaded on first use
(cold load), kept for ``keep_alive`` and reloaded when ``num_ctx``/``num_gpu``/``num_batch``
change; a client that hangs up during a load aborts it.

Faults (combinable, see ``FAULTS``; values are checked by ``parse_fault``):

- ``cold-load=SECONDS``: model load time (default 0.05 s).
- ``latency=MS``, ``jitter=MS``: delay before every response (jitter is uniform, seeded).
- ``drop-rate=FRACTION``: close the connection without answering (seeded).
- ``auth=TOKEN``: an auth proxy in front: 401 + ``WWW-Authenticate`` unless the bearer matches.
- ``origins=LIST``: ``OLLAMA_ORIGINS`` (split on commas without trimming, one ``*`` per entry).
- ``host-check=on|off``: force the Host-header (DNS-rebinding) check on or off.
- ``rate-limit=RPS``: a gateway token bucket (burst ``max(1, RPS/10)``) answering 429.
- ``queue=N``: ``OLLAMA_MAX_QUEUE``: 503 when more than N requests already wait for a load.
- ``busy``: the queue is full: every request that needs a load answers 503 ``server busy…``.
- ``runner-crash=old|new``: loads fail with 500 ``… process has terminated: exit status 2``.
- ``oom=old|new|killed``: loads fail with 500 and an out-of-memory message.
- ``mid-stream-error=MESSAGE``: one token, then ``{"error": MESSAGE}`` on the 200 stream.
- ``hang``: read the request and never answer; ``hang-after-headers``: send headers only.
- ``garbage``: 200 JSON responses carry non-JSON bytes; ``truncated-json``: JSON cut in half.
- ``html``: every path answers nginx's HTML welcome page with ``Server: nginx``.
- ``slow-generate=SECONDS``: generation takes that long before the final object.
- ``offload=PERCENT``: share of the model on the GPU (``/api/ps`` ``size_vram``, log lines).
- ``cloud=signin|quota|disabled|upstream``: ``:cloud``/``-cloud`` models answer 401
  (``signin_url``), 429 (quota), 403 (``ollama cloud is disabled: …``) or 502 (ollama.com
  unreachable).
- ``version=X.Y.Z``, ``context=N`` (every model's context length), ``seed=N``.

Every configured delay is multiplied by ``EmulatorConfig.time_scale``.

Layout (one concern per module): ``wire`` (HTTP/1.1 framing, Go JSON/durations/dates, error
shapes), ``decode`` (Go-compatible request decoding), ``models`` (names, ``ModelSpec``, show/tags
bodies), ``faults`` (``FAULTS``, ``parse_fault``), ``cloud`` (the cloud fault), ``scheduler``
(loads, queue, keep-alive), ``generation`` (the shared inference path), ``middleware`` (router,
CORS, Host check, faults in front of Ollama), ``routes_native`` / ``routes_openai`` (handlers),
``logs`` (Ollama-format log lines), ``server`` (``Emulator``, ``serve_forever``).
"""

from __future__ import annotations

from .faults import FAULTS, FaultInfo, parse_fault
from .models import ModelSpec
from .scheduler import LoadedModel
from .server import Emulator, EmulatorConfig, RequestRecord, serve_forever

__all__ = [
    "FAULTS",
    "Emulator",
    "EmulatorConfig",
    "FaultInfo",
    "LoadedModel",
    "ModelSpec",
    "RequestRecord",
    "parse_fault",
    "serve_forever",
]
