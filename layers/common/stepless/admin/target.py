"""Which CA an administrator command changes, decided in one place.

1. ``--stack NAME`` or ``$STEPLESS_STACK``: that deployed stack (AWS, with the caller's credentials) — unless
   NAME is the local CA's own stack, recorded by ``stepless dev`` (and no other endpoint is set), which is
   then reached as in 3.
2. Otherwise, when the library's tables are already in the environment (``STEPLESS_AUTHORITY_TABLE``, as in a
   function or a test), those tables.
3. Otherwise the local CA that ``stepless dev`` recorded under ``"local"`` in
   ``$STEPLESS_HOME/config/defaults.json``.
4. Otherwise the stack ``stepless`` on AWS.

The local CA is reached with its own placeholder credentials, never the caller's: the moto engine replaces the
AWS credential variables of this process before any client is made. The record is engine-tagged
(``{"engine": "moto", "stack", "endpoint", "region", "config-stamp"}`` for ``--aws-emulation``, or
``{"engine": "sqlite", "stack", "STEPLESS_STORE", "STEPLESS_KEY_PASSWORD_FILE", "config-stamp"}`` for the default
engine, whose store and key files are opened directly with no AWS call at all; written by
``DevStack.local_record``);
:data:`LOCAL_ENGINES` maps an engine to how the library is pointed at it, so another local engine plugs in
there. After a configuration change (:func:`changed`, called by ``change_config``) the local CA's config stamp
is rewritten and its gateway reloads the configuration at the next request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepless import aws, awssession, clienthome, settings
from stepless.admin import stack
from stepless.errors import CLIError
from stepless.stores import backend

STACK_ENV = "STEPLESS_STACK"
DEFAULT_STACK = "stepless"
LOCAL_KEY = "local"
# moto accepts any credentials; these keep the caller's real ones from ever reaching the local endpoint
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_CALLER_CREDENTIALS = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                       "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


@dataclasses.dataclass(frozen=True)
class Target:
    """The CA an administrator command talks to."""

    stack: str  # the stack name ("" when the environment's tables are used)
    outputs: dict[str, str]  # the stack's outputs ({} for the environment's tables)
    local: dict[str, Any] | None = None  # the local CA's record when the target is `stepless dev`'s

    @property
    def is_local(self) -> bool:
        return self.local is not None

    @property
    def secrets_prefix(self) -> str:
        """Where this CA's secrets are named (``<prefix>/managed/NAME`` …)."""
        return self.outputs.get("SecretsPrefix") or os.environ.get("STEPLESS_SECRETS_PREFIX") or self.stack \
            or DEFAULT_STACK

    def propagation(self) -> str:
        """When the functions see a configuration change, said truthfully for this target."""
        if self.is_local:
            return "The local CA applies the change to its next request."
        ttl = self.outputs.get("ConfigTtlSeconds")
        within = f"{ttl} s (the stack's ConfigTtlSeconds)" if ttl else "their configuration TTL (30 s by default)"
        return f"The functions pick the change up within {within}; no redeploy needed."


def local_record() -> dict[str, Any] | None:
    """What ``stepless dev`` recorded about its local CA, or None."""
    record = clienthome.defaults().get(LOCAL_KEY)
    if not isinstance(record, dict) or not record.get("stack"):
        return None
    return record


def resolve(stack_name: str | None) -> tuple[str, dict[str, Any] | None]:
    """(stack name, local record or None) by the rules above; "" for the environment's tables."""
    explicit = stack_name or os.environ.get(STACK_ENV)
    local = local_record()
    if explicit:
        if local and explicit == local["stack"] and os.environ.get("AWS_ENDPOINT_URL") in (None, "",
                                                                                         local.get("endpoint")):
            return explicit, local
        return explicit, None
    if os.environ.get(settings.AUTHORITY_TABLE) or os.environ.get(backend.STORE):
        return "", None
    if local:
        return local["stack"], local
    return DEFAULT_STACK, None


def administrator(stack_name: str | None) -> bool:
    """Whether a stack was named (--stack, STEPLESS_STACK) or the tables are in the environment: reads that
    may also be served by the CA's public API (``ca provisioner list``) then go to the configuration."""
    return bool(stack_name or os.environ.get(STACK_ENV) or os.environ.get(settings.AUTHORITY_TABLE))


def point_at_local(record: dict[str, Any]) -> None:
    """Send this process's AWS calls to the local CA's endpoint, with its placeholder credentials only."""
    if not record.get("endpoint"):
        raise CLIError("the local CA's record in the defaults has no endpoint: restart `stepless dev`")
    for var in list(os.environ):
        if var in _CALLER_CREDENTIALS or var.startswith("AWS_ENDPOINT_URL_"):
            del os.environ[var]
    region = record.get("region") or "us-east-1"
    os.environ.update({"AWS_ENDPOINT_URL": record["endpoint"], "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                       **LOCAL_CREDENTIALS})
    aws.reset()


def _use_moto(record: dict[str, Any]) -> dict[str, str]:
    """The moto engine: the template's stack deployed to `stepless dev`'s moto server; its outputs."""
    point_at_local(record)
    try:
        return stack.use(record["stack"])
    except CLIError as e:
        if "Could not connect" in str(e):
            raise CLIError(f"the local CA ({record['endpoint']}) is not running: start `stepless dev`, "
                           "or name a deployed stack with --stack") from e
        raise


def _use_store(record: dict[str, Any]) -> dict[str, str]:
    """The SQLite engine: the local CA's store and key files (the caller's AWS variables dropped: no AWS call)."""
    from stepless.signers.files import PASSWORD_FILE

    if not record.get(backend.STORE):
        raise CLIError("the local CA's record in the defaults has no store: restart `stepless dev`")
    for var in list(os.environ):
        if var in _CALLER_CREDENTIALS or var.startswith("AWS_ENDPOINT_URL"):
            del os.environ[var]
    os.environ[backend.STORE] = record[backend.STORE]
    if record.get(PASSWORD_FILE):
        os.environ[PASSWORD_FILE] = record[PASSWORD_FILE]
    backend.reset()
    return stack.use(record["stack"])  # the store's "outputs": where its key files are


# engine (the local record's "engine") → how to point the library at that local CA; returns stack-like outputs
LOCAL_ENGINES: dict[str, Callable[[dict[str, Any]], dict[str, str]]] = {"moto": _use_moto, "sqlite": _use_store}


_current: Target | None = None


def use(stack_name: str | None) -> Target:
    """Resolve the target and point the library's tables (and AWS clients) at it."""
    global _current
    _current = _use(stack_name)
    return _current


def current() -> Target:
    """The target of the last :func:`use` (this process's)."""
    if _current is None:
        raise CLIError("no target CA chosen")  # a programming error; one line all the same
    return _current


def changed(version: int) -> None:
    """Called after a configuration change: the local CA reloads its configuration at its next request."""
    stamp = (_current.local or {}).get("config-stamp") if _current is not None else None
    if stamp:
        with contextlib.suppress(OSError):  # else the CA still picks the change up within its TTL
            Path(stamp).write_text(f"{version} {uuid.uuid4()}\n")


def _use(stack_name: str | None) -> Target:
    name, local = resolve(stack_name)
    if not name:
        return Target("", {})
    if local is not None:
        engine = local.get("engine", "moto")
        if engine not in LOCAL_ENGINES:
            raise CLIError(f"the local CA in the defaults uses engine {engine!r}, which this command cannot reach")
        return Target(name, LOCAL_ENGINES[engine](local), local)
    if not _has_credentials():
        raise CLIError(f"no AWS credentials to reach stack {name}: configure them (aws configure, AWS_PROFILE), "
                       "or run `stepless dev` for a local CA")
    return Target(name, stack.use(name))


def _has_credentials() -> bool:
    try:
        return awssession.session().get_credentials() is not None
    except Exception:  # noqa: BLE001 - a broken profile: let the call itself report it
        return True
