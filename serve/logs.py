"""Logs of the core inside replicas: written like Serve's own lines (level, replica, request id)
to the same places, so that an operator sees a start-up repair as a WARNING like any other."""

from __future__ import annotations

import logging


def route_core_logs(level: str) -> None:
    """Give the ``core`` logger the ``ray.serve`` logger's handlers (set up by Serve in every
    replica) and the configured level."""
    core, serve_logger = logging.getLogger("core"), logging.getLogger("ray.serve")
    core.setLevel(level)
    if serve_logger.handlers:
        core.handlers = list(serve_logger.handlers)
        core.propagate = False
