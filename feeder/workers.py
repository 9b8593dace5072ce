"""Worker processes for the heavy parts of a refresh (reading many seed files, rendering many documents).

Workers are forked from a server process that has already imported the modules they need (never from the
caller, which may hold threads, locks and a database connection), exit when the process that started them
ends, even killed, and the server itself is stopped once they are done, so an idle daemon keeps no helper.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import select
import threading
import time
from concurrent.futures import ProcessPoolExecutor

MAX_WORKERS = 4
POLL_SECONDS = 1.0


def default_workers() -> int:
    """One worker per core this process may run on, at most MAX_WORKERS."""
    return min(len(os.sched_getaffinity(0)), MAX_WORKERS)


def pool(workers: int, preload: str) -> ProcessPoolExecutor:
    """``workers`` processes forked from a server that has imported ``preload`` and the main module."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", preload])
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),))


def stop_forkserver() -> None:
    """Stop the forkserver once its workers are gone; the next pool starts another (a fraction of a second).
    Python has no public way to do it: without its private one, the forkserver stays, idle."""
    stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()


def _exit_with(pid: int) -> None:
    """Make this worker exit when process ``pid`` does, even killed: a worker holds both ends of its task
    pipe (and the forkserver's liveness pipe), so it would otherwise wait for work forever."""

    def wait() -> None:
        wait_until_gone(pid)
        os._exit(1)

    threading.Thread(target=wait, name=f"exit-with-{pid}", daemon=True).start()


def wait_until_gone(pid: int, *, use_pidfd: bool = True) -> None:
    """Return once process ``pid`` has ended: woken by a pidfd, or where there is none (a kernel before 5.3, a
    seccomp filter) by looking once a second."""
    try:
        watched = os.pidfd_open(pid) if use_pidfd else None
    except OSError:
        watched = None
    if watched is not None:
        select.select([watched], [], [])
        return
    while _running(pid):
        time.sleep(POLL_SECONDS)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
