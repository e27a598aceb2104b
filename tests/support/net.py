"""A free loopback port for a private service instance (broker, moto, webserver, Redis):
tests and benchmarks start their own on one, never the machine's shared services."""

from __future__ import annotations

import socket


def free_port() -> int:
    """An unused TCP port on the loopback interface (the usual bind-to-0 trick: another
    process could take it before ours binds, which on a test machine does not happen)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
