"""What the host offers a plugin: log lines for the run's log, and granted secrets.

Inside a component these call the WIT ``weft:plugin/host`` imports (bound by the component glue);
outside one (unit tests, a plain ``python3``) log lines go to stderr and no secret is granted,
unless a test binds its own functions with :func:`bind`.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

LEVELS = ("trace", "debug", "info", "warn", "error")

_log: Callable[[str, str], None] = lambda level, message: print(f"[{level}] {message}", file=sys.stderr)
_secret: Callable[[str], Optional[str]] = lambda name: None


def bind(log: Callable[[str, str], None], secret: Callable[[str], Optional[str]]) -> None:
    """Routes :mod:`log` lines to ``log(level, message)`` (level one of ``LEVELS``) and
    :func:`secret` to ``secret(name)``."""
    global _log, _secret
    _log, _secret = log, secret


def secret(name: str) -> Optional[str]:
    """The secret ``name`` if it was granted to this plugin, else ``None``. The host masks a
    granted secret's value in log lines, outputs and errors."""
    return _secret(name)


class _Log:
    """Lines for the run's log: ``log.info("...")``, and ``trace``, ``debug``, ``warn``, ``error``."""

    def trace(self, message: str) -> None:
        _log("trace", str(message))

    def debug(self, message: str) -> None:
        _log("debug", str(message))

    def info(self, message: str) -> None:
        _log("info", str(message))

    def warn(self, message: str) -> None:
        _log("warn", str(message))

    def error(self, message: str) -> None:
        _log("error", str(message))


log = _Log()
