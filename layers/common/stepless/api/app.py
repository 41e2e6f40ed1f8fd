"""A tiny router for payload-2.0 events: routes at ``/PATH`` and ``/1.0/PATH``, errors in step-ca's shape."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

from stepless.api.http import Request, response
from stepless.errors import ConfigError, MethodNotAllowed, NotFound, StepError
from stepless.observability import logger, metrics, reason_code, traced

Handler = Callable[[Request], dict[str, Any]]
ErrorRenderer = Callable[[Request, StepError], dict[str, Any]]
UNMATCHED = "unmatched"  # the route label (log key, Latency dimension) of a request no route serves


@functools.lru_cache(maxsize=256)
def route_label(method: str, pattern: str) -> str:
    """``POST /sign``, ``GET /root/{sha}``: a registered route (either prefix), from its regex."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.removeprefix("^").removesuffix("$")).replace("\\", "")
    return f"{method} {path.removeprefix('/1.0') if path.startswith('/1.0/') else path}"


class App:
    """Routes → handlers; ``handler(event, context)`` is the Lambda entry point."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._renderers: list[tuple[re.Pattern[str], ErrorRenderer]] = []

    def error_renderer(self, path: re.Pattern[str], render: ErrorRenderer) -> None:
        """Render the errors of requests whose path matches ``path`` with ``render`` (ACME's problem documents)
        instead of step-ca's ``{"status", "message"}``."""
        self._renderers.append((path, render))

    def render(self, req: Request | None, e: StepError, event: dict[str, Any]) -> dict[str, Any]:
        """The error's response (``req`` is None when the event itself was refused, e.g. too large)."""
        if self._renderers and req is None:
            http = (event.get("requestContext") or {}).get("http") or {}
            req = Request(str(http.get("method") or "GET"), str(event.get("rawPath") or http.get("path") or "/"),
                          {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}, {}, b"")
        for path, render in self._renderers:
            if req is not None and path.match(req.path):
                return render(req, e)
        return response(e.status, e.to_json(), e.headers)

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register ``fn`` for ``method`` at ``path`` and ``/1.0`` + ``path``; ``{name}`` captures a segment."""

        def register(fn: Handler) -> Handler:
            for prefix in ("", "/1.0"):
                pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", prefix + path)
                self._routes.append((method.upper(), re.compile(f"^{pattern}$"), fn))
            return fn

        return register

    def dispatch(self, req: Request) -> dict[str, Any]:
        """Find the route and call it."""
        return self.match(req)[1](req)

    def match(self, req: Request) -> tuple[str, Handler]:
        """The route's label (:func:`route_label`) and handler for ``req``; sets ``req.params``."""
        path = req.path.rstrip("/") or "/"
        allowed = False
        for method, pattern, fn in self._routes:
            m = pattern.match(path)
            if not m:
                continue
            if method != req.method:
                allowed = True
                continue
            req.params = m.groupdict()
            return route_label(method, pattern.pattern), fn
        if allowed:
            raise MethodNotAllowed(f"{req.method} is not allowed on {path}")
        raise NotFound(f"no route for {req.method} {path}")

    def handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Lambda entry point: never raises, never returns a traceback. Logs, metrics: see observability."""
        start = time.perf_counter()
        metrics.begin()
        route = UNMATCHED
        req: Request | None = None
        try:
            req = Request.from_event(event)
            logger.append_keys(request_id=req.request_id, route=route, path=req.path,
                               lambda_request_id=getattr(context, "aws_request_id", None))
            route, fn = self.match(req)
            logger.append_keys(route=route)
            with traced(route) as segment:
                res = fn(req)
                if segment is not None:
                    segment.put_annotation("status", res.get("statusCode", 0))
            return res
        except StepError as e:
            code = reason_code(e.status, e.detail)
            if e.status >= 500:
                metrics.server_error()
                logger.warning("request failed", extra={"status": e.status, "reason": e.detail, "reason_code": code})
            else:
                metrics.rejected(code)
                logger.info("request refused", extra={"status": e.status, "reason": e.detail, "reason_code": code})
            return self.render(req, e, event)
        except ConfigError as e:
            metrics.server_error()
            logger.error("configuration error", extra={"reason": str(e)})
            return response(500, {"status": 500, "message": "The certificate authority is not configured correctly."})
        except Exception:
            metrics.server_error()
            logger.exception("unhandled error")
            return response(500, {"status": 500,
                                  "message": "The certificate authority encountered an Internal Server Error."})
        finally:
            metrics.latency(route, (time.perf_counter() - start) * 1000)
            metrics.flush()
            logger.remove_keys(["request_id", "route", "path", "lambda_request_id", "provisioner", "serial"])
