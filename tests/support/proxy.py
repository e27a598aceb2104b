"""A TCP proxy that can cut a service off: connections dropped and new ones refused.

Used to make the broker or S3 unreachable for a while without losing their state, the
way a network partition would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from lakehouse.broker import EmbeddedBroker
from tests.support.net import free_port


class CuttableProxy:
    """Forwards 127.0.0.1:listen_port to target_port until `cut()`, again after `restore()`."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> CuttableProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.listen_port))
        server.listen(128)
        self._server = server
        self._thread = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        """Stop listening and reset every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self.start()

    stop = cut

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def broker_behind_proxy(log: Path) -> Iterator[CuttableProxy]:
    """A fresh broker that clients reach only through a cuttable proxy: the proxy's port
    is both the bootstrap and the advertised address (`127.0.0.1:{proxy.listen_port}`)."""
    proxy_port, broker_port = free_port(), free_port()
    broker = EmbeddedBroker("127.0.0.1", broker_port, log, advertised_port=proxy_port)
    broker.start()
    proxy = CuttableProxy(proxy_port, broker_port).start()
    try:
        yield proxy
    finally:
        proxy.cut()
        broker.stop()
