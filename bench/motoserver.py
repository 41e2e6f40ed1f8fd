"""moto server in a separate process, speaking HTTP/1.1 keep-alive (as AWS does), on loopback.

``python -m bench.motoserver`` prints ``PORT <n>`` once it listens; :func:`running` starts one for a
``with`` block (the benchmarks' real-path section and the lean-client tests). werkzeug's server (moto's own)
closes the connection after every response; AWS endpoints keep connections open, so this serves moto's
WSGI app with http.server's HTTP/1.1 keep-alive instead, or every call would pay a TCP connect (and the
client a connection set-up) that a warm Lambda does not pay.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator

from bench.common import ROOT, serving


def serve(fast_transactions: bool = False) -> None:
    """Serve until killed; ``fast_transactions``: without moto's deep copy of every table per
    TransactWriteItems (its rollback copy, quadratic over a benchmark's thousands of items)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from moto.server import DomainDispatcherApplication, create_backend_app

    if fast_transactions:
        import copy
        import types

        from moto.dynamodb import models

        models.copy = types.SimpleNamespace(deepcopy=lambda obj, *a, **k: obj, copy=copy.copy)  # type: ignore[assignment]
    app = DomainDispatcherApplication(create_backend_app)

    class Handler(BaseHTTPRequestHandler):
        """moto's WSGI app behind http.server with HTTP/1.1 keep-alive (werkzeug's server always closes)."""

        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, *args: object) -> None:
            pass

        def _wsgi(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path, _, query = self.path.partition("?")
            host, _, port = (self.headers.get("Host") or "127.0.0.1").partition(":")
            environ = {"REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                       "SERVER_NAME": host, "SERVER_PORT": port or "80", "SERVER_PROTOCOL": "HTTP/1.1",
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
                       "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
                       "wsgi.run_once": False, "REMOTE_ADDR": self.client_address[0]}
            for name, value in self.headers.items():
                key = "HTTP_" + name.upper().replace("-", "_")
                if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                    environ[key] = value
            answer: list = []

            def start_response(status: str, headers: list, exc_info: object = None) -> object:
                answer[:] = [status, headers]
                return lambda data: None

            data = b"".join(app(environ, start_response))
            status, headers = answer
            self.send_response(int(status.split()[0]), status.partition(" ")[2])
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _wsgi

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


@contextlib.contextmanager
def running(fast_transactions: bool = False) -> Iterator[tuple[str, int]]:
    """A moto server process for the block: (endpoint URL, its pid)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(ROOT)
    args = ["--fast-transactions"] if fast_transactions else []
    with serving(["-m", "bench.motoserver", *args], env, "moto server") as (port, pid):
        yield f"http://127.0.0.1:{port}", pid


if __name__ == "__main__":
    serve(fast_transactions="--fast-transactions" in sys.argv[1:])
