"""Run a command in a real terminal (a pty as its stdin, stdout and stderr) and read the
screen it wrote: for what only a terminal gets (colour, the live status line)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import time
from collections.abc import Sequence


def run_in_terminal(argv: Sequence[str], env: dict[str, str], *, columns: int = 120,
                    rows: int = 40, timeout: float = 60.0) -> tuple[int, str]:
    """(exit code, everything written to the terminal). The command is killed past
    ``timeout`` seconds (the code is then the kill's)."""
    main, other = pty.openpty()
    fcntl.ioctl(other, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(list(argv), stdin=other, stdout=other, stderr=other, env=env,
                            start_new_session=True)
    os.close(other)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed, the command ended
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
        code = proc.wait(10)
    return code, b"".join(chunks).decode("utf-8", "replace")
