"""A tiny router for payload-2.0 events: routes at ``/PATH`` and ``/1.0/PATH``, errors in step-ca's shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from stepless.api.http import Request, response
from stepless.errors import ConfigError, MethodNotAllowed, NotFound, StepError
from stepless.observability import logger

Handler = Callable[[Request], dict[str, Any]]


class App:
    """Routes → handlers; ``handler(event, context)`` is the Lambda entry point."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

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
            return fn(req)
        if allowed:
            raise MethodNotAllowed(f"{req.method} is not allowed on {path}")
        raise NotFound(f"no route for {req.method} {path}")

    def handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Lambda entry point: never raises, never returns a traceback."""
        try:
            req = Request.from_event(event)
            logger.append_keys(request_id=req.request_id, route=f"{req.method} {req.path}")
            return self.dispatch(req)
        except StepError as e:
            if e.status >= 500:
                logger.warning("request failed", extra={"status": e.status, "reason": e.detail})
            else:
                logger.info("request refused", extra={"status": e.status, "reason": e.detail})
            return response(e.status, e.to_json(), e.headers)
        except ConfigError as e:
            logger.error("configuration error", extra={"reason": str(e)})
            return response(500, {"status": 500, "message": "The certificate authority is not configured correctly."})
        except Exception:
            logger.exception("unhandled error")
            return response(500, {"status": 500,
                                  "message": "The certificate authority encountered an Internal Server Error."})
        finally:
            logger.remove_keys(["request_id", "route"])
