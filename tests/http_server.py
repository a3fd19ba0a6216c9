"""The one HTTP server class the test servers share.

``ThreadingHTTPServer`` serves each connection on its own thread, and that thread waits
for the next request for as long as the client keeps the connection alive. A client a
test never closes (an SDK client held in a cache, say) would then leave a thread behind
for the rest of the session, and tests that check "no other thread runs" (the token
counter forks only then; training must leave no thread) would fail by test order alone.
:meth:`LocalHTTPServer.close` therefore hangs up every open connection and waits for the
threads serving them to end.
"""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any


class LocalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, handler: Any, port: int = 0):
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        super().__init__(("127.0.0.1", port), handler)
        self.port = self.server_address[1]
        self._serving = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> "LocalHTTPServer":
        self._serving.start()
        return self

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
            self._workers = [t for t in self._workers if t.is_alive()]
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        with self._open_lock:
            self._workers.append(t)
        t.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, hang up every open connection, wait for their threads."""
        if self._serving.is_alive():
            self.shutdown()
        self.server_close()
        with self._open_lock:
            still_open, workers = list(self._open), list(self._workers)
        for sock in still_open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in workers:
            t.join(timeout)
