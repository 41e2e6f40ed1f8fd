"""Provisioner administration (AWS credentials): list, add, update, remove — like ``step ca provisioner``.

The configuration is the one authority item (``stores.authority``). A change loads it, applies itself to
the fresh document, validates the result and writes it together with its audit record in one DynamoDB
transaction, conditional on the version it read (optimistic locking, retried once on a conflict). Warm
functions pick the change up within ``STEPLESS_CONFIG_TTL`` seconds (default 30); this process's own
cached authority (``stepless.authority``) is deliberately left alone, as a function's would be.

Entries use step-ca's JSON shapes:

- JWK: ``{"type":"JWK","name","key":<public JWK>,"encryptedKey"?,"claims"?}``
- OIDC: ``{"type":"OIDC","name","clientID","clientSecret"?,"configurationEndpoint","admins"?,"domains"?,
  "groups"?,"listenAddress"?,"claims"?}``
- X5C: ``{"type":"X5C","name","roots":<base64 of the concatenated PEM roots>,"claims"?}``
- SSHPOP: ``{"type":"SSHPOP","name","claims":{"enableSSHCA":true}}``
- ACME: ``{"type":"ACME","name","requireEAB":bool,"forceCN"?,"challenges"?,"policy"?,"claims"?}``

Every error is a :class:`stepless.errors.ClientError` with a one-line message (never a secret).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import jose, oidc_discovery
from stepless.admin import target
from stepless.claims import _DURATIONS, _FLAGS, Claims
from stepless.durations import parse_duration
from stepless.errors import ClientError, ConfigError
from stepless.stores import audit
from stepless.stores import authority as store
from stepless.stores.errors import ConfigConflict
from stepless.x509 import chain

TYPES = ("JWK", "OIDC", "X5C", "SSHPOP", "ACME")
DURATION_KEYS = tuple(key for key, _ in _DURATIONS.values())
FLAG_KEYS = tuple(key for key, _ in _FLAGS.values())
CLAIM_KEYS = DURATION_KEYS + FLAG_KEYS
DISCOVERY_TIMEOUT = 10.0
MAX_DISCOVERY_BYTES = 1 << 20
MAX_ITEM_BYTES = 380_000  # DynamoDB items are at most 400 KB; keep room for the other attributes
_NAME_MAX = 128
MAX_CLAIM_DURATION = dt.timedelta(days=3650)  # no lifetime longer than the root and intermediate's own


@dataclasses.dataclass(frozen=True)
class Change:
    """What a change did: the entry (as ``list`` shows it), the new configuration version, the audit record."""

    entry: dict[str, Any]
    version: int
    audit: dict[str, Any]


# ---------------------------------------------------------------------------------------------- reading


def public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as GET /provisioners shows it, without the OIDC client secret."""
    return {k: v for k, v in entry.items() if k != "clientSecret"}


def list_provisioners() -> list[dict[str, Any]]:
    """The configured provisioners, in configuration order, without secrets."""
    doc, _ = _load()
    return [public_entry(p) for p in doc.get("provisioners") or []]


# ---------------------------------------------------------------------------------------------- checks


def normalize_type(value: str) -> str:
    """``jwk``/``oidc``/``x5c``/``sshpop`` (any case) → step's spelling; others refused."""
    wanted = (value or "JWK").strip().upper()
    if wanted not in TYPES:
        raise ClientError(f"unsupported provisioner type {value!r} (stepless supports {', '.join(TYPES)})")
    return wanted


def check_name(name: str) -> str:
    """A provisioner name: not empty, at most 128 characters, no surrounding blanks or control characters."""
    if not isinstance(name, str) or not name:
        raise ClientError("the provisioner name cannot be empty")
    if name != name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ClientError(f"invalid provisioner name {name!r}: no surrounding blanks or control characters")
    if len(name) > _NAME_MAX:
        raise ClientError(f"the provisioner name is longer than {_NAME_MAX} characters")
    return name


def check_claims(values: dict[str, Any]) -> dict[str, Any]:
    """Claims given by an administrator (step JSON keys): Go durations and booleans, normalized.

    A value of ``None`` or ``""`` means "unset" (fall back to the authority's) and is kept as ``None``.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in CLAIM_KEYS:
            raise ClientError(f"unknown claim {key!r}")
        if value in (None, ""):
            out[key] = None
        elif key in DURATION_KEYS:
            try:
                d = parse_duration(str(value))
            except ValueError as e:
                raise ClientError(f"claims: {key}: {e}") from e
            if d <= dt.timedelta(0):
                raise ClientError(f"claims: {key}: the duration must be positive, got {value!r}")
            if d > MAX_CLAIM_DURATION:
                raise ClientError(f"claims: {key}: at most 87600h (10 years, the CA certificates' lifetime), "
                                  f"got {value!r}")
            out[key] = str(value).strip()
        elif isinstance(value, bool):
            out[key] = value
        else:
            raise ClientError(f"claims: {key} must be true or false")
    return out


def merge_claims(current: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` applied (``None`` removes a key)."""
    merged = dict(current or {})
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def validate_claims(name: str, claims: dict[str, Any] | None, doc: dict[str, Any]) -> Claims:
    """The provisioner's claims resolved over the authority's; min ≤ default ≤ max for each kind."""
    try:
        base = Claims.from_json(doc.get("claims"), None)
    except ConfigError as e:
        raise ClientError(f"the authority's own claims are invalid: {e}") from e
    try:
        resolved = Claims.from_json(claims, base)
    except ConfigError as e:
        raise ClientError(f"provisioner {name}: {e}") from e
    if resolved.enable_ssh_ca and not (doc.get("ssh") or {}).get("userKey"):
        raise ClientError(f"provisioner {name}: the CA has no SSH keys, so SSH cannot be enabled "
                          "(run `stepless ca init --ssh`)")
    return resolved


def check_url(url: str, what: str) -> str:
    """An https URL, or plain http on a loopback address: the same rule the functions apply at run time
    (``oidc_discovery.check_url``), so nothing is accepted here that they would refuse."""
    try:
        return oidc_discovery.check_url(url, what)
    except ValueError as e:
        raise ClientError(str(e)) from e


def discover(url: str, *, timeout: float = DISCOVERY_TIMEOUT) -> dict[str, Any]:
    """Fetch an OpenID configuration document; it must be JSON with ``issuer`` and ``jwks_uri``.

    As at run time (``stepless.oidc_discovery``), an endpoint without the well-known path gets it appended.
    """
    from stepless.oidc_discovery import configuration_url

    check_url(url, "configuration endpoint")
    try:
        url = configuration_url(url)
    except ValueError as e:
        raise ClientError(str(e)) from e
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "stepless"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as res:  # noqa: S310 - scheme checked above
            body = res.read(MAX_DISCOVERY_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise ClientError(f"configuration endpoint {url} answered HTTP {e.code}") from e
    except urllib.error.URLError as e:
        raise ClientError(f"configuration endpoint {url} is unreachable: {e.reason}") from e
    except TimeoutError as e:
        raise ClientError(f"configuration endpoint {url} did not answer within {timeout:g}s") from e
    except (OSError, ValueError) as e:
        raise ClientError(f"configuration endpoint {url} is unreachable: {e}") from e
    if len(body) > MAX_DISCOVERY_BYTES:
        raise ClientError(f"configuration endpoint {url} returned more than {MAX_DISCOVERY_BYTES} bytes")
    try:
        config = json.loads(body)
    except ValueError as e:
        raise ClientError(f"configuration endpoint {url} did not return JSON") from e
    if not isinstance(config, dict):
        raise ClientError(f"configuration endpoint {url} did not return a JSON object")
    for field in ("issuer", "jwks_uri"):
        if not isinstance(config.get(field), str) or not config[field]:
            raise ClientError(f"configuration endpoint {url} returned no {field}")
    check_url(config["jwks_uri"], "jwks_uri")
    return config


def check_listen_address(address: str) -> str:
    """``:10000`` or ``host:port`` (the OIDC flow's loopback callback)."""
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):(\d{1,5})", address)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ClientError(f"invalid listen address {address!r} (expected :PORT or HOST:PORT)")
    return address


def public_jwk_from(data: bytes | str, source: str = "the public key") -> dict[str, Any]:
    """A public JWK (with ``kid`` and ``alg``) from a JWK or a PEM public (or unencrypted private) key.

    Only the public half is ever kept: a private key given here is not stored.
    """
    raw = data.encode() if isinstance(data, str) else data
    text = raw.strip()
    if text.startswith(b"{"):
        try:
            jwk = json.loads(text)
        except ValueError as e:
            raise ClientError(f"{source} is not valid JSON") from e
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("EC", "RSA", "OKP"):
            raise ClientError(f"{source}: only EC, RSA or OKP keys can be provisioner keys")
        pub = jose.public_part(jwk)
        try:
            jose.key_from_jwk(pub)
            jose.thumbprint(pub)
        except (KeyError, ValueError) as e:
            raise ClientError(f"{source} is not a usable JWK: {e}") from e
    elif b"-----BEGIN" in text:
        try:
            key: Any = serialization.load_pem_public_key(text)
        except ValueError:
            try:
                key = serialization.load_pem_private_key(text, password=None)
            except TypeError as e:
                raise ClientError(f"{source} is an encrypted private key; give the public key") from e
            except ValueError as e:
                raise ClientError(f"{source} is not a PEM public key") from e
        try:
            pub = jose.public_jwk(key)
        except ValueError as e:
            raise ClientError(f"{source}: {e}") from e
    else:
        raise ClientError(f"{source} is neither a JWK nor a PEM key")
    try:
        pub.setdefault("use", "sig")
        pub["alg"] = pub.get("alg") or jose.default_alg(pub)
        pub["kid"] = pub.get("kid") or jose.thumbprint(pub)
    except KeyError as e:
        raise ClientError(f"{source}: unsupported key ({e})") from e
    return pub


def x5c_roots(pem: bytes | str, *, now: dt.datetime | None = None) -> str:
    """Validate PEM root certificates for an X5C provisioner; step's ``roots`` value (base64 of the PEMs).

    Each must be a CA certificate (basic constraints CA) with the certSign key usage, and not expired.
    """
    raw = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError as e:
        raise ClientError("the X5C roots are not PEM certificates") from e
    now = now or dt.datetime.now(dt.UTC)
    seen: set[bytes] = set()
    out: list[bytes] = []
    for cert in certs:
        cn = ", ".join(str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME))
        label = f"certificate {cn or cert.subject.rfc4514_string()!r}"
        if not chain.is_ca(cert):
            raise ClientError(f"{label} is not a CA certificate and cannot be an X5C root")
        key_usage = chain.extension_value(cert, x509.KeyUsage)
        if key_usage is None or not key_usage.key_cert_sign:
            raise ClientError(f"{label} cannot be used as an X5C root: it lacks the Certificate Sign key usage")
        if cert.not_valid_after_utc <= now:
            raise ClientError(f"{label} expired on {cert.not_valid_after_utc.isoformat()}")
        der = cert.public_bytes(Encoding.DER)
        if der not in seen:
            seen.add(der)
            out.append(cert.public_bytes(Encoding.PEM))
    return base64.b64encode(b"".join(out)).decode()


# ---------------------------------------------------------------------------------------------- entries


def _with_claims(entry: dict[str, Any], claims: dict[str, Any] | None) -> dict[str, Any]:
    cleaned = {k: v for k, v in check_claims(claims or {}).items() if v is not None}
    if cleaned:
        entry["claims"] = cleaned
    return entry


def jwk_entry(name: str, *, password: str | None = None, public_key: bytes | str | None = None,
              claims: dict[str, Any] | None = None, p2c: int = jose.STEP_P2C,
              source: str = "the public key") -> dict[str, Any]:
    """A JWK entry: a new key pair encrypted with ``password`` (``--create``), or ``public_key`` alone."""
    from stepless.admin.init import jwk_provisioner

    check_name(name)
    if (password is None) == (public_key is None):
        raise ClientError("a JWK provisioner needs either a new key (--create) or a public key (--public-key)")
    if password is not None:
        if not password:
            raise ClientError("the provisioner password cannot be empty")
        entry = jwk_provisioner(name, password, p2c=p2c)
    else:
        entry = {"type": "JWK", "name": name, "key": public_jwk_from(public_key or b"", source)}
    return _with_claims(entry, claims)


def oidc_entry(name: str, *, client_id: str, configuration_endpoint: str, client_secret: str = "",
               domains: Iterable[str] = (), admins: Iterable[str] = (), groups: Iterable[str] = (),
               listen_address: str = "", claims: dict[str, Any] | None = None,
               discovery: bool = True) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """An OIDC entry and the discovered configuration (the endpoint must answer unless ``discovery`` is off)."""
    check_name(name)
    if not client_id:
        raise ClientError("an OIDC provisioner needs --client-id")
    if not configuration_endpoint:
        raise ClientError("an OIDC provisioner needs --configuration-endpoint")
    config = discover(configuration_endpoint) if discovery else None
    if not discovery:
        check_url(configuration_endpoint, "configuration endpoint")
    entry: dict[str, Any] = {"type": "OIDC", "name": name, "clientID": client_id,
                             "configurationEndpoint": configuration_endpoint}
    if client_secret:
        entry["clientSecret"] = client_secret
    for key, values, what in (("admins", admins, "admin"), ("domains", domains, "domain"),
                              ("groups", groups, "group")):
        items = [v.strip() for v in values]
        if any(not v for v in items):
            raise ClientError(f"an empty --{what} is not allowed")
        if key == "domains":
            items = [v.lower() for v in items]
            if any("@" in v or "/" in v for v in items):
                raise ClientError("--domain takes a domain name such as example.com")
        if items:
            entry[key] = list(dict.fromkeys(items))
    if listen_address:
        entry["listenAddress"] = check_listen_address(listen_address)
    return _with_claims(entry, claims), config


def x5c_entry(name: str, roots_pem: bytes | str, *, claims: dict[str, Any] | None = None) -> dict[str, Any]:
    """An X5C entry with the given root certificate(s)."""
    check_name(name)
    return _with_claims({"type": "X5C", "name": name, "roots": x5c_roots(roots_pem)}, claims)


def sshpop_entry(name: str, *, claims: dict[str, Any] | None = None) -> dict[str, Any]:
    """An SSHPOP entry (SSH enabled, as step does)."""
    check_name(name)
    return _with_claims({"type": "SSHPOP", "name": name}, {"enableSSHCA": True, **(claims or {})})


def acme_entry(name: str, *, require_eab: bool = True, policy: dict[str, Any] | None = None,
               challenges: list[str] | None = None, claims: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ACME provisioner (RFC 8555); External Account Binding required unless ``require_eab`` is False."""
    check_name(name)
    entry: dict[str, Any] = {"type": "ACME", "name": name, "requireEAB": require_eab}
    if policy:
        entry["policy"] = policy
    if challenges:
        entry["challenges"] = challenges
    return _with_claims(entry, claims)


# ---------------------------------------------------------------------------------------------- changes


def add(entry: dict[str, Any], *, summary: dict[str, Any] | None = None) -> Change:
    """Add a provisioner; refuses a duplicate name (or a JWK key id already used)."""
    entry = copy.deepcopy(entry)
    name = check_name(entry.get("name", ""))
    normalize_type(entry.get("type", ""))

    def apply(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        provs = doc.setdefault("provisioners", [])
        if any(p.get("name") == name for p in provs):
            raise ClientError(f"a provisioner named {name} already exists")
        kid = (entry.get("key") or {}).get("kid") if entry["type"] == "JWK" else None
        if kid and any((p.get("key") or {}).get("kid") == kid for p in provs if p.get("type") == "JWK"):
            raise ClientError(f"another JWK provisioner already uses the key {kid}")
        _validate_entry(entry, doc)
        provs.append(entry)
        return entry, {"type": entry["type"], "entry": entry, **(summary or {})}

    return _apply("provisioner.add", name, apply)


def update(name: str, claims: dict[str, Any]) -> Change:
    """Change a provisioner's claims (step JSON keys; ``None``/``""`` reverts a key to the authority's)."""
    changes = check_claims(claims)
    if not changes:
        raise ClientError("nothing to update: give at least one claims flag")

    def apply(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        entry = _find(doc, name)
        before = dict(entry.get("claims") or {})
        after = merge_claims(before, changes)
        candidate = {k: v for k, v in entry.items() if k != "claims"}
        if after:
            candidate["claims"] = after
        _validate_entry(candidate, doc)
        entry.clear()
        entry.update(candidate)
        return entry, {"type": entry.get("type"), "claims": {"before": before, "after": after}}

    return _apply("provisioner.update", name, apply)


def remove(name: str, *, type_: str | None = None) -> Change:
    """Remove a provisioner; refuses to remove the last one that can issue certificates."""
    wanted = normalize_type(type_) if type_ else None

    def apply(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        entry = _find(doc, name)
        if wanted and entry.get("type") != wanted:
            raise ClientError(f"provisioner {name} is of type {entry.get('type')}, not {wanted}")
        rest = [p for p in doc["provisioners"] if p is not entry]
        if not any(p.get("type") != "SSHPOP" for p in rest):
            raise ClientError(f"refusing to remove {name}: it is the last provisioner that can issue certificates")
        doc["provisioners"] = rest
        return entry, {"type": entry.get("type"), "entry": entry}

    return _apply("provisioner.remove", name, apply)


# ---------------------------------------------------------------------------------------------- internals


T = TypeVar("T")


def _load() -> tuple[dict[str, Any], int]:
    try:
        return store.load()
    except ConfigError as e:
        raise ClientError(str(e)) from e


def _find(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for p in doc.get("provisioners") or []:
        if p.get("name") == name:
            return p
    raise ClientError(f"no provisioner named {name}")


def _validate_entry(entry: dict[str, Any], doc: dict[str, Any]) -> None:
    """The entry's claims, and the entry built exactly as the functions will build it."""
    from stepless.provisioners import build

    validate_claims(entry["name"], entry.get("claims"), doc)
    if entry.get("type") == "SSHPOP" and not (doc.get("ssh") or {}).get("userKey"):
        raise ClientError("an SSHPOP provisioner needs the CA's SSH keys (run `stepless ca init --ssh`)")
    try:
        build(entry, Claims.from_json(doc.get("claims"), None))
    except ConfigError as e:
        if "unsupported provisioner type" in str(e):
            raise ClientError(f"this stepless cannot serve {entry.get('type')} provisioners yet") from e
        raise ClientError(f"invalid provisioner {entry['name']}: {e}") from e
    except (KeyError, ValueError, TypeError) as e:
        raise ClientError(f"invalid provisioner {entry['name']}: {e}") from e


def commit(doc: dict[str, Any], version: int, record: dict[str, Any]) -> int:
    """Write the configuration (if still at ``version``) and the audit record, atomically."""
    if len(json.dumps(doc, sort_keys=True).encode()) > MAX_ITEM_BYTES:
        raise ClientError("the configuration would exceed DynamoDB's 400 KB item limit")
    return store.commit(doc, version, record)


def change_config(action: str, name: str, mutate: Callable[[dict[str, Any]], tuple[T, dict[str, Any]]],
                  ) -> tuple[T, int, dict[str, Any]]:
    """Load, ``mutate`` (it returns a result and the audit summary), write with the audit record atomically;
    one retry after a concurrent change. Returns (result, new version, audit record)."""
    for attempt in (1, 2):
        doc, version = _load()
        result, summary = mutate(doc)
        record = audit.new_record(action, name, summary, version=version + 1)
        try:
            new_version = commit(doc, version, record)
        except ConfigConflict:
            if attempt == 2:
                raise ClientError("the authority configuration keeps changing meanwhile; try again") from None
            continue
        target.changed(new_version)
        return result, new_version, record
    raise AssertionError("unreachable")  # pragma: no cover


def _apply(action: str, name: str,
           mutate: Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]) -> Change:
    """:func:`change_config` for a provisioner entry."""
    entry, version, record = change_config(action, name, mutate)
    return Change(public_entry(entry), version, record)
