"""moto's server with its request handling serialized: one request at a time through moto's backends.

moto's backends are not thread-safe (its DynamoDB ``transact_write_items`` deep-copies and restores whole
tables without a lock: "dictionary changed size during iteration" → 500, and a failed transaction can
roll back another thread's committed write). Real AWS serializes conflicting writes, so the local stack
serializes moto: a lock around its WSGI application, held until the response body is read. The callers
(the handlers, the gateway threads) still run concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.server import ThreadedMotoServer


class _Serialized:
    """A WSGI application that runs ``app`` under one lock, body included."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


class SerializedMotoServer(ThreadedMotoServer):
    """:class:`moto.server.ThreadedMotoServer` whose requests run one at a time (see the module doc)."""

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = _Serialized(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
