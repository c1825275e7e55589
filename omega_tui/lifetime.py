"""Child processes that never outlive their parent: the engine under the workstation's UI, the simulated
gateway under the engine. `watch_stdin` stops them at EOF on the stdin pipe from the parent.

`die_with_parent` asks Linux for SIGTERM (a graceful stop) when the parent dies (PR_SET_PDEATHSIG). A parent
that died before the request is caught by the caller's stdin watch: the child's stdin is a pipe from the
parent, so it is at EOF at once. A parent that is PID 1 (a container's entrypoint) is not a reason to refuse.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(what: str) -> None:
    """SIGTERM to this process when its parent dies; exit now if the parent died while this was asked."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:
        log.error("the parent process is gone before the %s started; not starting", what)
        sys.exit(0)


def watch_stdin(
    loop: asyncio.AbstractEventLoop, on_eof: Callable[[], None], on_line: Callable[[str], None] | None = None
) -> int | None:
    """Call `on_eof` when stdin reaches EOF (the parent closed the pipe or died), and `on_line` with each line
    the parent writes meanwhile (ignored without it). Returns the watched fd (for `loop.remove_reader`), or
    None when there is no stdin to watch."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    os.set_blocking(fd, False)
    pending = bytearray()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            on_eof()
            return
        if on_line is None:
            return
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            on_line(line.decode(errors="replace"))

    loop.add_reader(fd, readable)
    return fd
