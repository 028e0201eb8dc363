"""Other libraries' messages go to the run's log, not the terminal: the terminal keeps embdeck's own.

C libraries write to file descriptor 2 themselves (libpng's "sRGB: out of place" on some PNG files, printed
once per file that OpenCV decodes), where Python cannot catch them; so fd 2 is pointed at ``<out>/run.log``
for the run, and Python's ``sys.stderr`` (embdeck's log lines, click's messages, progress bars) at a copy of
the terminal's descriptor. Python warnings and other libraries' log records go to the same file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

LOG_NAME = "run.log"


def _real_stderr() -> bool:
    """Whether ``sys.stderr`` writes to fd 2 (not to a test runner's buffer, which is left as it is)."""
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def library_messages_to_log(out: str | Path, ours: str = "embdeck"):
    """Within: fd 2 (C libraries, child processes), Python warnings and log records of loggers other than
    ``ours`` append to ``<out>/run.log``; ``sys.stderr`` and the handlers on it still reach the terminal."""
    path = Path(out).expanduser().resolve() / LOG_NAME
    log_file = open(path, "a", encoding="utf-8", buffering=1)
    log_file.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} pid {os.getpid()}: {' '.join(sys.argv)}\n")
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    old_stderr, swap = sys.stderr, _real_stderr()
    root = logging.getLogger()
    to_file = logging.StreamHandler(log_file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    to_file.addFilter(lambda record: not record.name.startswith(ours))
    on_terminal = [h for h in root.handlers if isinstance(h, logging.StreamHandler) and h.stream is old_stderr]
    not_ours = lambda record: record.name.startswith(ours)  # noqa: E731 - a filter is a callable
    try:
        if swap:
            sys.stderr = os.fdopen(terminal_fd, "w", buffering=1, encoding=old_stderr.encoding,
                                   errors="backslashreplace", closefd=False)
            for handler in on_terminal:
                handler.setStream(sys.stderr)
        for handler in on_terminal:
            handler.addFilter(not_ours)
        os.dup2(log_file.fileno(), 2)
        root.addHandler(to_file)
        logging.captureWarnings(True)
        yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(to_file)
        for handler in on_terminal:
            handler.removeFilter(not_ours)
        if swap:
            sys.stderr.flush()
            for handler in on_terminal:
                handler.setStream(old_stderr)
            sys.stderr = old_stderr
        os.dup2(terminal_fd, 2)
        os.close(terminal_fd)
        log_file.close()
