"""Child processes that never outlive their parent: the engine under the workstation's UI, the simulated
gateway under the engine.

`die_with_parent` asks Linux for SIGTERM (a graceful stop) when the parent dies (PR_SET_PDEATHSIG). A parent
that died before the request is caught by the caller's stdin watch: the child's stdin is a pipe from the
parent, so it is at EOF at once. A parent that is PID 1 (a container's entrypoint) is not a reason to refuse.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

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
