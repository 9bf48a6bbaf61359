"""Leaving the process without waiting for stuck threads. Standard library only: ``main``
imports it on every command, ``--help`` included, so it must not pull in the runner's imports
(net, ssl, context)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import NoReturn

# True while ``main`` runs inside a process that must outlive it (the test suite runs the
# command line in-process): leaving then raises ``SystemExit`` instead of ``os._exit``, which
# would end that whole process. Never set by the command line itself.
IN_PROCESS = False


def exit_process(code: int) -> NoReturn:
    """Exit with ``code`` without waiting for threads a cut probe left behind.

    Probe threads are daemons, but a probe's own helpers (a ``ThreadPoolExecutor``'s workers)
    are not, and interpreter shutdown joins those: when any is still alive, flush and leave
    with ``os._exit``."""
    stuck = [t for t in threading.enumerate()
             if t is not threading.main_thread() and t.is_alive()
             and (not t.daemon or t.name.startswith("od-probe-"))]
    if stuck:
        leave_now(code)
    sys.exit(code)


def leave_now(code: int) -> NoReturn:
    """Flush what was printed and leave at once, whatever threads are still running."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if IN_PROCESS:
        raise SystemExit(code)
    os._exit(code)
