"""What Ollama itself says: one table of its error and log strings, and a pure classifier.

Three readers meet the same server messages — the warm-up probe (the ``error`` of an answer or
of a line inside a stream), the pasted-error reader (``errortext``: the message inside a client's
exception) and the log reader (``logs``: the server's own lines). They all classify through
``MESSAGES`` so the same words always mean the same cause, whoever reads them.

Each row is one family of Ollama wordings: a regular expression (case-insensitive, linear: no
nested quantifiers), the cause id it is evidence for, where in Ollama's source the string comes
from (file, function, versions) and sample messages, verbatim. Rows are checked in order and the
first that matches decides (``classify``), so the order encodes which reason wins when a message
carries two: an out-of-memory reason inside a runner crash
(``llama-server process has terminated: … cudaMalloc failed: out of memory``) is the memory; an
unknown architecture inside a crash is the outdated server.

Both runner generations are covered: before v0.30 the runner is "llama runner"
(``llm/server.go``), from v0.30 it is "llama-server" (``llm/llama_server.go``).

What is *not* here: client libraries' exception formats (``errortext``), and log lines that are
facts rather than errors (``Listening on``, ``server config``, GIN access lines: ``logs``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One family of Ollama's own wordings."""

    id: str
    pattern: re.Pattern[str]
    cause: str
    source: str  # file (function), versions — where Ollama produces the string
    samples: tuple[str, ...]
    where: str = "answer"  # "answer": an API error (and its log line); "log": the log only


def _m(id_: str, regex: str, cause: str, source: str, *samples: str,
       where: str = "answer") -> Message:
    return Message(id_, re.compile(regex, re.IGNORECASE), cause, source, samples, where)


MESSAGES: tuple[Message, ...] = (
    # -- out of memory: before the crash rows, whose messages often carry the OOM reason --------
    _m("oom-startup", r"reported out-of-memory", "out-of-memory",
       "llm/llama_server.go (llamaServerRunner.WaitUntilRunning), v0.30+",
       "llama-server reported out-of-memory during startup: cudaMalloc failed"),
    _m("oom-substring",
       r"out of memory|out of device memory|cudaMalloc failed|hipMalloc failed|"
       r"failed to allocate|allocation failed|not enough memory|insufficient memory|"
       r"vk_error_out_of_device_memory|erroroutof(?:device)?memory",
       "out-of-memory",
       "llm/status.go (outOfMemorySubstrings, IsOutOfMemoryMessage), v0.30+; the runner's "
       "stderr (ggml-cuda.cu 'CUDA error', ggml-vulkan ErrorOutOfDeviceMemory)",
       "llama runner process has terminated: CUDA error: out of memory",
       "CUDA error: out of device memory",
       "hipMalloc failed: out of device memory",
       "ggml: failed to allocate buffer",
       "Insufficient Memory for KV cache",
       "vk::Device::allocateMemory: ErrorOutOfDeviceMemory",
       "mlx: ErrorOutOfMemory"),
    _m("oom-system-memory", r"requires more system memory", "out-of-memory",
       "llm/server.go (NewLlamaServer), v0.5–v0.24",
       "model requires more system memory (39.4 GiB) than is available (30.0 GiB)"),
    _m("oom-request-too-large", r"model request too large for system", "out-of-memory",
       "llm/server.go (NewLlamaServer, slog.Warn), v0.5–v0.24",
       'level=WARN source=server.go:539 msg="model request too large for system" '
       'requested="39.4 GiB" available=30000000000', where="log"),
    _m("oom-mlx", r"model requires \S{1,20} ?\S{0,8} but only \S{1,20} ?\S{0,8} (?:are|is) "
                  r"available", "out-of-memory",
       "x/mlxrunner/client.go (Client.Load), v0.30+",
       "model requires 12.0 GiB but only 7.5 GiB are available (after 1.0 GiB overhead)"),
    _m("oom-too-large", r"model is too large for system memory", "out-of-memory",
       "server/sched.go (Scheduler.load, slog.Info), v0.30+",
       'level=INFO source=sched.go:632 msg="model is too large for system memory" '
       "requireFull=false", where="log"),
    _m("oom-load-full", r"unable to load full model on GPU", "out-of-memory",
       "llm/server.go (ErrLoadRequiredFull), v0.12+",
       "unable to load full model on GPU"),
    _m("oom-runtime", r"runtime OOM detected", "out-of-memory",
       "server/sched.go (runtime OOM handling, slog.Warn), v0.30+",
       'level=WARN source=sched.go:1648 msg="runtime OOM detected; expiring loaded models to '
       'clear memory before next request" model=llama3.2', where="log"),
    # exit by signal: Go's ProcessState prints "signal: killed" (the kernel or cgroup OOM killer)
    _m("oom-killed", r"signal: killed", "out-of-memory",
       "llm/llama_server.go (WaitUntilRunning: 'process has terminated: …'), all versions",
       "llama-server process has terminated: signal: killed"),
    # -- the model needs a newer server ---------------------------------------------------------
    _m("outdated",
       r"unknown model architecture|may be incompatible with your version of Ollama|"
       r"requires a newer version of Ollama|no longer compatible with your version of Ollama|"
       r"pull model manifest: 412",
       "ollama-outdated",
       "llama/llama.go (unknown model architecture), v0.5–v0.12; server/sched.go "
       "(Scheduler.load: 'may be incompatible'), v0.30+; server/images.go (pullModelManifest: "
       "the registry's 412), all versions",
       "error loading model: unknown model architecture: 'qwen3'",
       "llama-server process has terminated: exit status 1: error loading model: unknown "
       "model architecture: 'mllama'",
       "pull model manifest: 412: The model you are attempting to pull requires a newer "
       "version of Ollama."),
    # -- the server's own load timeout (a stall timeout, OLLAMA_LOAD_TIMEOUT) --------------------
    _m("load-timeout", r"timed out waiting for (?:llama runner|llama-server) to start",
       "slow-model-load",
       "llm/server.go (WaitUntilRunning), v0.5–v0.24; llm/llama_server.go "
       "(WaitUntilRunning), v0.30+",
       "timed out waiting for llama runner to start - progress 0.00 - ",
       "timed out waiting for llama-server to start - last error"),
    _m("load-aborted", r"client connection closed before (?:llama-server |server )?finished "
                       r"loading, aborting load", "slow-model-load",
       "llm/llama_server.go (WaitUntilRunning), v0.30+; llm/server.go, v0.5–v0.24",
       'level=WARN msg="client connection closed before llama-server finished loading, '
       'aborting load" model=llama3.2', where="log"),
    # -- the runner died ------------------------------------------------------------------------
    _m("runner-terminated",
       r"(?:llama runner|llama-server) process (?:has terminated|no longer running)",
       "runner-crashed",
       "llm/server.go (WaitUntilRunning, getServerStatus), v0.5–v0.24; llm/llama_server.go "
       "(WaitUntilRunning, getServerStatus), v0.30+",
       "llama runner process has terminated: exit status 2",
       "llama runner process no longer running: 1 error",
       "llama-server process has terminated: exit status 1: error loading model",
       "llama-server process no longer running: exit status 2 "),
    _m("runner-stopped", r"model runner has unexpectedly stopped", "runner-crashed",
       "llm/llama_server.go (Completion), v0.12+",
       "model runner has unexpectedly stopped, this may be due to resource limitations or an "
       "internal error, check ollama server logs for details"),
    _m("runner-error", r"an error was encountered while running the model", "runner-crashed",
       "llm/llama_server.go (Completion), v0.30+",
       "an error was encountered while running the model: unexpected EOF"),
    _m("runner-fatal", r"GGML_ASSERT|signal arrived during cgo execution|SIGSEGV|SIGABRT",
       "runner-crashed",
       "llm/status.go (errorPrefixes: the runner's stderr lines Ollama keeps as its last "
       "error), v0.30+; the Go runtime's fatal-signal report",
       "GGML_ASSERT(ggml_nelements(a) == ne0*ne1) failed",
       "SIGSEGV: segmentation violation", where="log"),
    _m("load-failed", r"msg=\"?Load failed\"?|error loading llama server|NewLlamaServer failed|"
                      r"llama-server load failed", "runner-crashed",
       "server/sched.go (Scheduler.load: slog 'Load failed', 'llama-server load failed; …'), "
       "v0.30+; 'error loading llama server', 'NewLlamaServer failed', v0.5–v0.24",
       'level=INFO source=sched.go:641 msg="Load failed" model=/m error="exit status 2"',
       where="log"),
    # -- the queue ------------------------------------------------------------------------------
    _m("queue-full", r"server busy, please try again|maximum pending requests exceeded",
       "server-busy", "server/sched.go (ErrMaxQueue), v0.5+",
       "server busy, please try again.  maximum pending requests exceeded"),
    # -- the model and the request --------------------------------------------------------------
    _m("capability", r"does not support (?:generate|chat|tools|vision|insert|thinking|"
                     r"embedding|completion)", "model-capability",
       "server/routes.go (GenerateHandler, ChatHandler), server/images.go "
       "(Model.CheckCapabilities, errCapabilities), v0.5+",
       '"nomic-embed-text" does not support generate',
       "registry.ollama.ai/library/dolphin-mistral:latest does not support tools"),
    _m("prompt-too-long", r"the prompt is longer than the context length", "prompt-truncated",
       "llm/llama_server.go (context shift off), v0.30+",
       "the prompt is longer than the context length currently available to the model; "
       "shorten the prompt"),
    _m("prompt-truncated", r"truncating input prompt", "prompt-truncated",
       "llm/llama_server.go (slog.Warn), v0.30+; runner/llamarunner, v0.5–v0.24",
       'level=WARN msg="truncating input prompt" limit=2048 prompt=4100', where="log"),
    _m("model-not-found", r"model ['\"][^'\"\n]{0,300}['\"] not found", "model-not-found",
       "server/routes.go (GenerateHandler, ChatHandler, ShowHandler; handleScheduleError), "
       "v0.3+",
       "model 'llama3.1' not found",
       'model "x" not found, try pulling it first'),
    _m("wrong-path", r"404 page not found", "wrong-base-path",
       "gin (the router's plain-text 404 for a path Ollama does not serve), all versions",
       "404 page not found"),
    _m("wrong-method", r"405 method not allowed", "method-not-allowed",
       "gin (HandleMethodNotAllowed), all versions", "405 method not allowed"),
    _m("bad-json", r"missing request body|invalid character '.{1,4}' looking for|"
                   r"cannot unmarshal|missing unit in duration|model is required",
       "bad-request", "server/routes.go (ShouldBindJSON errors, model checks), v0.5+",
       "invalid character 'x' looking for beginning of value",
       'time: missing unit in duration "300"', "missing request body"),
    # -- cloud models: ollama.com's answers passed through (server/cloud_proxy.go) --------------
    _m("cloud-signin", r"signin_url|You need to be signed in|not currently signed in",
       "cloud-signin-required",
       "server/cloud_proxy.go (signing failed), server/routes.go (signout), v0.18+",
       '{"error":"unauthorized","signin_url":"https://ollama.com/connect?name=h&key=k"}'),
    _m("cloud-disabled", r"ollama cloud is disabled", "cloud-disabled",
       "internal/cloud/policy.go (DisabledMessagePrefix), v0.30+",
       "ollama cloud is disabled: remote model is unavailable"),
    _m("cloud-quota", r"usage limit", "rate-limited",
       "ollama.com's 429, passed through by server/cloud_proxy.go, v0.18+",
       "you (alice) have reached your hourly usage limit, upgrade for higher limits"),
    # -- GPU discovery (log only) ---------------------------------------------------------------
    _m("gpu-discovery",
       r"failure during (?:llama-server )?GPU discovery|GPU discovery watchdog timed out|"
       r"discovery: timed out waiting for server startup|NVIDIA driver too old|"
       r"AMD driver is too old|no rocblas support|"
       r"compute capability not in compiled architectures|"
       r"ggml_cuda_init: failed to initialize|failed to finish discovery before timeout|"
       r"unable to load cuda driver library|cuda driver library init failure",
       "gpu-offload",
       "discover/llama_server.go, discover/runner.go (GPU discovery), v0.30+; discover/gpu.go, "
       "v0.5–v0.12; ggml-cuda.cu (ggml_cuda_init)",
       'level=WARN msg="llama-server discovery: timed out waiting for server startup"',
       "ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected",
       where="log"),
    # -- the process ----------------------------------------------------------------------------
    _m("fd-exhausted", r"too many open files", "fd-limit-low",
       "Go net/http (Server.Serve accept errors) under server/routes.go (Serve), all versions",
       "http: Accept error: accept tcp [::]:11434: accept4: too many open files; retrying in "
       "5ms"),
    _m("address-in-use", r"bind: address already in use|Only one usage of each socket address",
       "wrong-instance", "cmd/cmd.go (RunServer: net.Listen's error), all versions",
       "Error: listen tcp 127.0.0.1:11434: bind: address already in use", where="log"),
)

BY_ID: dict[str, Message] = {m.id: m for m in MESSAGES}


def match(message: str) -> Message | None:
    """The first row that matches ``message``, or ``None``. Pure."""
    for row in MESSAGES:
        if row.pattern.search(message):
            return row
    return None


def matches(message: str) -> list[Message]:
    """Every row that matches, in table order (the first one decides). Pure."""
    return [row for row in MESSAGES if row.pattern.search(message)]


def classify(message: str) -> str | None:
    """The cause id Ollama's own words in ``message`` point to, or ``None``. Pure.

    For the warm-up probe: call it on the JSON ``error`` (or the body) first, and fall back to
    the HTTP status only when it returns ``None``.
    """
    row = match(message)
    return row.cause if row else None
