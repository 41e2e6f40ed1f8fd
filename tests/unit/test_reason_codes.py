"""Every refusal carries its metric reason code; the codes are the ones the message-matching rules gave.

The ``Rejected`` metric's ``reason`` used to be found by matching substrings of the error message (about 60
rules in ``observability.py``). The reason now lives on the error (``reason=`` where it is raised, or the
class). ``reason_codes_before.json`` is the table those rules produced for every error the library raised
when they were removed: ``[status, message template, code]``, a ``{}`` for each interpolated value. The
tests below check that each raise site still yields that code, so the meaning of the metric is kept; a
site whose message is reworded keeps its explicit code (that is the point), and a new site states its own.
"""

from __future__ import annotations

import ast
import importlib
import json
import pathlib
from typing import Any

import pytest

from stepless import errors
from stepless.durations import TimeArg
from stepless.errors import BadRequest, StepError, Unauthorized
from stepless.observability import REASONS, reason_code
from stepless.provisioners import Provisioner, x5c_insecure
from stepless.provisioners.jwk import JWKProvisioner
from stepless.provisioners.oidc import OIDCProvisioner
from stepless.provisioners.x5c import X5CProvisioner
from stepless.services import ssh_issuance
from stepless.ssh import wire
from stepless.stores import errors as store_errors
from stepless.x509 import chain

LIBRARY = pathlib.Path(errors.__file__).parent
BEFORE = {(status, text): code for status, text, code in
          json.loads((pathlib.Path(__file__).parent / "reason_codes_before.json").read_text())}
CLASSES: dict[str, type[StepError]] = {
    name: cls for module in (errors, wire, store_errors) for name, cls in vars(module).items()
    if isinstance(cls, type) and issubclass(cls, StepError)}


def _module(path: pathlib.Path) -> dict[str, Any]:
    name = ".".join(("stepless", *path.relative_to(LIBRARY).with_suffix("").parts)).removesuffix(".__init__")
    return vars(importlib.import_module(name))


def _constant(expr: ast.expr, namespace: dict[str, Any]) -> str | None:
    """The value of a module-level string constant (``USED``, ``tokens.USED``), else None."""
    if not isinstance(expr, (ast.Name, ast.Attribute)):
        return None
    try:
        value = eval(compile(ast.Expression(expr), "<constant>", "eval"), dict(namespace))  # noqa: S307
    except Exception:  # noqa: BLE001 - a local variable, not a constant
        return None
    return value if isinstance(value, str) else None


def _template(node: ast.expr | None, namespace: dict[str, Any]) -> str | None:
    """The message with ``{}`` for each interpolated value (``'{}'`` when interpolated with ``!r``)."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value)
                continue
            const = _constant(value.value, namespace)  # type: ignore[attr-defined]
            quoted = value.conversion == ord("r")  # type: ignore[attr-defined]
            parts.append((repr(const) if quoted else const) if const is not None else ("'{}'" if quoted else "{}"))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left, namespace), _template(node.right, namespace)
        return None if left is None or right is None else left + right
    return _constant(node, namespace)


def _sites() -> list[tuple[str, int, type[StepError], str | None, ast.expr | None]]:
    """(file, line, error class, message template, reason expression) of every error the library makes."""
    sites = []
    for path in sorted(LIBRARY.rglob("*.py")):
        tree = ast.parse(path.read_text())
        namespace: dict[str, Any] | None = None
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in CLASSES:
                continue
            namespace = _module(path) if namespace is None else namespace
            reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
            template = _template(node.args[0] if node.args else None, namespace)
            sites.append((str(path.relative_to(LIBRARY)), node.lineno, CLASSES[name], template, reason))
    return sites


SITES = _sites()


def test_the_scan_sees_the_library() -> None:
    assert len(SITES) > 200
    assert sum((cls.status, template) in BEFORE for _, _, cls, template, _ in SITES) > 180


@pytest.mark.parametrize(("where", "line", "cls", "template", "reason"), SITES,
                         ids=[f"{w}:{n}" for w, n, *_ in SITES])
def test_each_raise_site_keeps_its_code(where: str, line: int, cls: type[StepError], template: str | None,
                                        reason: ast.expr | None) -> None:
    if reason is not None and not isinstance(reason, ast.Constant):
        return  # a code passed in by the caller: see test_codes_passed_in_by_callers
    code = reason.value if reason is not None else cls.reason
    assert code in REASONS, f"{where}:{line}: {code!r} is not a known reason code"
    expected = BEFORE.get((cls.status, template))
    if expected is not None:
        assert code == expected, f"{where}:{line}: {template!r} was {expected!r}, is now {code!r}"


def _raised(fn: Any, *args: Any, **kwargs: Any) -> StepError:
    with pytest.raises(StepError) as info:
        fn(*args, **kwargs)
    return info.value


def test_codes_passed_in_by_callers() -> None:
    """The sites whose code depends on the caller (the message's subject decided it before)."""
    assert reason_code(_raised(ssh_issuance.check_principals, ["ok", ""])) == "invalid_principals"
    assert reason_code(_raised(ssh_issuance.check_principals, ["a,b"])) == "invalid_principals"
    assert reason_code(_raised(ssh_issuance.check_name, "", "ssh certificate key id", commas=True)) == "bad_request"
    assert reason_code(_raised(ssh_issuance.public_key_from, "")) == "bad_request"
    assert reason_code(_raised(ssh_issuance.public_key_from, "", "public key", reason="invalid_public_key")) == \
        "invalid_public_key"
    assert reason_code(_raised(TimeArg.parse, 5, "notAfter")) == "invalid_validity"
    assert reason_code(_raised(TimeArg.parse, "soon", "validBefore")) == "invalid_validity"
    assert reason_code(_raised(chain.load_pem, "nope")) == "client_certificate_mismatch"
    assert reason_code(x5c_insecure._fail("missing x5cInsecure header", "invalid_x5c_token")) == "invalid_x5c_token"
    assert reason_code(x5c_insecure._fail("token has no jti claim")) == "invalid_token"
    # the stores' typed errors (their messages are set in their constructors)
    for error, message in ((store_errors.TokenUsed(), "token already used"),
                           (store_errors.ParentRevoked(), "certificate has been revoked"),
                           (store_errors.ParentUnknown(), "certificate not found"),
                           (store_errors.RenewalCap(), "certificate has been renewed {} times: renew its latest "
                            "renewal instead"),
                           (store_errors.SerialCollision(), "serial collision, retry"),
                           (store_errors.AlreadyRevoked("5"), "certificate with serial number {} is already revoked"),
                           (store_errors.ManagedExists("x"), "managed certificate '{}' exists or is being renewed; "
                            "retry")):
        assert reason_code(error) == BEFORE.get((error.status, message), type(error).reason), error


@pytest.mark.parametrize("cls", [Provisioner, JWKProvisioner, OIDCProvisioner, X5CProvisioner])
def test_the_ssh_disabled_refusal_keeps_its_code(cls: type[Provisioner]) -> None:
    """The enableSSHCA refusal, worded per provisioner type in one place (Provisioner.check_ssh_enabled)."""
    message, code = cls.ssh_disabled
    assert BEFORE[(401, message.replace("{name}", "{}"))] == code


def test_the_code_is_not_the_message() -> None:
    """Rewording a message leaves the code; the code is never request text."""
    assert reason_code(Unauthorized("anything at all", reason="token_expired")) == "token_expired"
    assert reason_code(Unauthorized("token expired")) == "unauthorized"
    assert reason_code(BadRequest("x", reason="UNAUTHORIZED 'user input'")) == "client_error"


def test_every_status_has_a_class_code() -> None:
    for cls in CLASSES.values():
        assert cls.reason in REASONS, cls
