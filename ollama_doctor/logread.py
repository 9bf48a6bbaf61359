"""Reading an Ollama server log, bounded in bytes, lines and time, and running a command the same
way (``run_command``: ``ollama -v``, ``journalctl``).

Kept apart from ``logs`` (which classifies what is read) so that a probe that only looks for a
log or a binary does not compile the classification table's regular expressions.

A log comes from ``--log-file PATH`` (``-`` = stdin), else ``journalctl -u ollama -n N``, else
``~/.ollama/logs/server.log`` or the newest ``/var/log/ollama/*.log`` (docs/ollama-wire.md
§4.1). Only the last N lines matter, and the cost is bounded whatever the source:

- a regular file is read **backwards from its end** in 64 KiB blocks until N lines are found or
  ``MAX_TAIL_BYTES`` were read, so a 10 GB log costs one small read;
- a stream (stdin, a FIFO, journalctl's output) is read forwards keeping a rolling tail of N
  lines, and stops after ``MAX_STREAM_BYTES`` or its deadline;
- every line is cut at ``MAX_LINE_CHARS``; NUL bytes and invalid UTF-8 become nothing or U+FFFD.
- lines keep their number in the source, as an editor shows it (``LogText.numbers``): a
  file's older part is counted for newlines up to ``MAX_COUNT_BYTES``; past that, and for
  journalctl, lines count from the first line read, and the output says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

BLOCK = 64 * 1024
MAX_LINE_CHARS = 4096
MAX_LINE_BYTES = 4 * MAX_LINE_CHARS  # UTF-8: at most 4 bytes a character
MAX_TAIL_BYTES = 16 * 1024 * 1024  # a file: at most this much read from its end
# A file's older part is scanned for newlines (to number lines as the file does) only up to
# this size: 64 MiB is a few tens of milliseconds; a 10 GB log is numbered from its tail.
MAX_COUNT_BYTES = 64 * 1024 * 1024
MAX_STREAM_BYTES = 256 * 1024 * 1024  # stdin / journalctl: at most this much consumed
STREAM_SECONDS = 20.0  # and for at most this long
DEFAULT_LINES = 2000


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class LogText:
    """The tail of one log source, or why it could not be read."""

    source: str  # a path, "stdin" or "journalctl -u ollama"
    kind: str  # "file", "stream", "stdin", "journal"
    lines: list[str] = field(default_factory=list)
    bytes_read: int = 0
    complete: bool = True  # the start of the source was reached (no older lines exist)
    long_lines: int = 0  # lines cut at MAX_LINE_CHARS
    stopped: str | None = None  # why a stream read stopped early (byte or time limit)
    error: str | None = None
    tried: list[dict[str, str]] = field(default_factory=list)  # sources tried before this one
    # each line's number in the source (a file or stdin), as an editor shows it; None when only
    # the tail is known (journalctl, a file too large to count): then lines count from 1
    numbers: list[int] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "kind": self.kind,
                               "lines_read": len(self.lines), "bytes_read": self.bytes_read,
                               "complete": self.complete,
                               "line_numbers": "source" if self.numbers is not None
                               else "lines read"}
        if self.long_lines:
            out["long_lines_cut"] = self.long_lines
        if self.stopped:
            out["stopped"] = self.stopped
        if self.error:
            out["error"] = self.error
        if self.tried:
            out["tried"] = self.tried
        return out


def _clean(raw: bytes) -> tuple[str, bool]:
    """One raw line → text without NULs or a trailing CR, cut at MAX_LINE_CHARS."""
    raw = raw.replace(b"\x00", b"")
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    long = len(raw) > MAX_LINE_BYTES
    text = raw[:MAX_LINE_BYTES].decode("utf-8", "replace")
    if len(text) > MAX_LINE_CHARS:
        text, long = text[:MAX_LINE_CHARS], True
    if long:
        text += "…"
    return text, long


def split_lines(data: bytes, lines: int, *,
                drop_first: bool) -> tuple[list[str], int, list[int]]:
    """The last ``lines`` non-blank lines of ``data``, how many were cut to length, and each
    one's 0-based line index within ``data`` (the fragment a mid-file read starts with counts
    as line 0). ``drop_first``: the data starts mid-line (read from the middle of a file), so
    its first piece is a fragment, unless it is the only piece (one line longer than what was
    read)."""
    parts = data.split(b"\n")
    first = 1 if drop_first and len(parts) > 1 else 0
    out: list[str] = []
    where: list[int] = []
    cut = 0
    for index in range(len(parts) - 1, first - 1, -1):
        if len(out) >= lines:
            break
        text, long = _clean(parts[index])
        if text.strip():
            out.append(text)
            where.append(index)
            cut += long
    out.reverse()
    where.reverse()
    return out, cut, where


def tail_file(path: Path, lines: int = DEFAULT_LINES, shown: str | None = None) -> LogText:
    """The last ``lines`` lines of a file, read backwards in blocks. Never raises; never reads
    more than ``min(MAX_TAIL_BYTES, lines × MAX_LINE_BYTES)``; never blocks on a FIFO."""
    name = shown or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return LogText(name, "file", error="no such file")
    except IsADirectoryError:
        return LogText(name, "file", error="is a directory, not a file")
    except PermissionError:
        return LogText(name, "file", error="permission denied")
    except OSError as exc:
        return LogText(name, "file", error=exc.strerror or type(exc).__name__)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return LogText(name, "file", error="is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            with os.fdopen(os.dup(fd), "rb", buffering=0) as stream:
                out = tail_stream(stream, lines, name, "stream")
            return out
        return _tail_regular(fd, info.st_size, lines, name)
    except OSError as exc:
        return LogText(name, "file", error=exc.strerror or type(exc).__name__)
    finally:
        os.close(fd)


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows has no pread
    return os.read(fd, size)


def _tail_regular(fd: int, size: int, lines: int, name: str) -> LogText:
    budget = min(MAX_TAIL_BYTES, max(lines, 1) * MAX_LINE_BYTES)
    pos, read, newlines = size, 0, 0
    chunks: list[bytes] = []
    while pos > 0 and read < budget and newlines <= lines:
        step = min(BLOCK, pos, budget - read)
        pos -= step
        data = _pread(fd, step, pos)
        if not data:
            break
        chunks.append(data)
        read += len(data)
        newlines += data.count(b"\n")
    data = b"".join(reversed(chunks))
    text, cut, where = split_lines(data, lines, drop_first=pos > 0)
    before = _count_lines(fd, pos)  # lines that start before what was read
    numbers = None if before is None else [before + 1 + i if pos else i + 1 for i in where]
    return LogText(name, "file", text, read, complete=pos == 0, long_lines=cut,
                   numbers=numbers)


def _count_lines(fd: int, end: int) -> int | None:
    """Newlines in the file's first ``end`` bytes (``None`` past ``MAX_COUNT_BYTES``): the
    number of the line the tail's first fragment belongs to, minus one."""
    if end > MAX_COUNT_BYTES:
        return None
    count, offset = 0, 0
    while offset < end:
        data = _pread(fd, min(BLOCK * 16, end - offset), offset)
        if not data:
            return None
        count += data.count(b"\n")
        offset += len(data)
    return count


def tail_stream(stream: BinaryIO | IO[bytes], lines: int, name: str, kind: str,
                *, max_bytes: int = MAX_STREAM_BYTES, seconds: float = STREAM_SECONDS,
                clock: Callable[[], float] = time.monotonic) -> LogText:
    """Read a stream forwards keeping its last ``lines`` lines; bounded in bytes and time (the
    time is checked between reads, so one read that blocks is not interrupted)."""
    keep: deque[tuple[int, str]] = deque(maxlen=max(lines, 0))
    seen = 0  # lines ended so far: the next line's number is seen + 1
    carry = b""
    carry_long = False
    read, cut = 0, 0
    stopped = None
    complete = True
    deadline = clock() + seconds
    try:
        while True:
            if read >= max_bytes:
                stopped, complete = f"stopped after {max_bytes} bytes", False
                break
            if clock() > deadline:
                stopped, complete = f"stopped after {seconds:g} s", False
                break
            chunk = stream.read(min(BLOCK, max_bytes - read))
            if not chunk:
                break
            read += len(chunk)
            parts = (carry + chunk).split(b"\n")
            carry = parts.pop()
            for raw in parts:
                seen += 1
                text, long = _clean(raw)
                if carry_long:
                    long, carry_long = True, False
                    if not text.endswith("…"):
                        text += "…"
                if text.strip():
                    keep.append((seen, text))
                    cut += long
            if len(carry) > MAX_LINE_BYTES:  # a line without end: keep its start only
                carry, carry_long = carry[:MAX_LINE_BYTES], True
    except (OSError, ValueError) as exc:
        return LogText(name, kind, [t for _, t in keep], read, error=f"read failed: {exc}")
    if carry and stopped is None:  # a stream cut short ends mid-line: that piece is dropped
        text, long = _clean(carry)
        if text.strip():
            keep.append((seen + 1, text + ("…" if carry_long and not long else "")))
            cut += long or carry_long
    return LogText(name, kind, [t for _, t in keep], read, complete=complete, long_lines=cut,
                   stopped=stopped, numbers=[n for n, _ in keep])


def tail_text_stream(stream: TextIO, lines: int, name: str = "stdin") -> LogText:
    """stdin as given to a command: its bytes when it has them, else its text."""
    binary = getattr(stream, "buffer", None)
    if binary is not None:
        return tail_stream(binary, lines, name, "stdin")
    return tail_stream(_TextAsBytes(stream), lines, name, "stdin")  # type: ignore[arg-type]


class _TextAsBytes:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def read(self, size: int) -> bytes:
        return self._stream.read(max(size // 4, 1)).encode("utf-8", "replace")


# -- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    code: int | None
    stdout: bytes
    stderr: bytes = b""
    error: str | None = None  # could not run, or timed out

    @property
    def ok(self) -> bool:
        return self.error is None and self.code == 0


Runner = Callable[[Sequence[str], float, Mapping[str, str]], CommandResult]


def run_command(argv: Sequence[str], timeout: float, env: Mapping[str, str],
                max_bytes: int = MAX_TAIL_BYTES) -> CommandResult:
    """Run a command with a time limit, keeping at most ``max_bytes`` of each output. Never
    raises: a missing binary, a timeout or endless output become ``error``."""
    try:
        # its own process group, so that a timeout kills the children that hold the pipes too
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env),
                                start_new_session=os.name == "posix")
    except OSError as exc:
        return CommandResult(None, b"", error=f"cannot run {argv[0]}: {exc.strerror or exc}")
    box: dict[str, bytes] = {}

    def pump(key: str, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        data = bytearray()
        try:
            while True:
                chunk = stream.read(BLOCK)
                if not chunk:
                    break
                if len(data) < max_bytes:
                    data += chunk[: max_bytes - len(data)]
        except (OSError, ValueError):
            pass
        box[key] = bytes(data)

    threads = [threading.Thread(target=pump, args=("out", proc.stdout), daemon=True),
               threading.Thread(target=pump, args=("err", proc.stderr), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        code: int | None = proc.wait(timeout)
        error = None
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait(5)
        code, error = None, f"{argv[0]} did not finish within {timeout:.3g} s"
    for thread in threads:
        thread.join(2)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return CommandResult(code, box.get("out", b""), box.get("err", b""), error)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if os.name == "posix":
        import signal

        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()


def which(name: str, env: Mapping[str, str]) -> str | None:
    """``name`` on the ``PATH`` of ``env`` (not of this process)."""
    return shutil.which(name, path=env.get("PATH", os.defpath))


# -- choosing a source ------------------------------------------------------------------------


def candidate_files(env: Mapping[str, str], fs_root: Path) -> list[tuple[Path, str]]:
    """Where Ollama writes its log on this machine, most specific first: (path, as shown)."""

    def under(name: str) -> Path:
        return fs_root / name.lstrip("/")

    out: list[tuple[Path, str]] = []
    home = env.get("HOME") or env.get("USERPROFILE")
    if home:
        shown = f"{home.rstrip('/')}/.ollama/logs/server.log"
        out.append((under(shown), shown))
    local_app = env.get("LOCALAPPDATA")
    if local_app:
        shown = f"{local_app}\\Ollama\\server.log"
        out.append((Path(local_app) / "Ollama" / "server.log", shown))
    var_log = under("/var/log/ollama")
    try:
        found = [p for p in var_log.glob("*.log") if p.is_file()]
    except OSError:
        found = []
    found.sort(key=_mtime, reverse=True)
    out += [(p, f"/var/log/ollama/{p.name}") for p in found]
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def read_journal(lines: int, env: Mapping[str, str], timeout: float,
                 runner: Runner | None = None) -> LogText | None:
    """``journalctl -u ollama -n N --no-pager``; ``None`` when journalctl is not installed."""
    exe = which("journalctl", env)
    if exe is None:
        return None
    shown = f"journalctl -u ollama -n {lines} --no-pager"
    result = (runner or run_command)([exe, "-u", "ollama", "-n", str(lines), "--no-pager"],
                                     timeout, env)
    if result.error:
        return LogText(shown, "journal", error=result.error)
    text, cut, _ = split_lines(result.stdout, lines, drop_first=False)
    # "-- No entries --", "-- Journal begins at …" and journalctl's hints are not log lines
    text = [t for t in text if not t.startswith("-- ") and not t.startswith("Hint: ")]
    if result.code not in (0, None) and not text:
        err = result.stderr.decode("utf-8", "replace").strip().splitlines()
        return LogText(shown, "journal", error=f"exit {result.code}: {err[0] if err else ''}")
    return LogText(shown, "journal", text, len(result.stdout), complete=len(text) < lines,
                   long_lines=cut)


def read_log(log_file: str | None, lines: int, env: Mapping[str, str], fs_root: Path,
             *, stdin: TextIO | None = None, timeout: float = 5.0,
             runner: Runner | None = None, journal: bool = True) -> LogText | None:
    """The log to classify: ``log_file`` (``-`` = ``stdin``), else the journal, else the usual
    files. ``None`` when no source was found (each one tried is listed by the caller's facts);
    a named file that cannot be read is a ``LogText`` with ``error``."""
    if log_file == "-":
        return tail_text_stream(stdin if stdin is not None else sys.stdin, lines)
    if log_file:
        return tail_file(Path(log_file), lines, log_file)
    tried: list[dict[str, str]] = []
    if journal:
        got = read_journal(lines, env, timeout, runner)
        if got is not None:
            if got.ok and got.lines:
                return got
            tried.append({"source": got.source, "result": got.error or "no entries"})
    for path, shown in candidate_files(env, fs_root):
        got = tail_file(path, lines, shown)
        if got.ok:
            got.tried = tried
            return got
        tried.append({"source": shown, "result": got.error or "?"})
    return LogText("none", "none", error="no Ollama server log found", tried=tried)
