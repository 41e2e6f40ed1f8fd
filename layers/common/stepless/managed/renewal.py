"""Issuing managed certificates (administrator) and renewing the due ones (the scheduled run).

The administrator signs in-process with the intermediate signer, as the services do (their AWS
credentials can use the key; no token): the certificate is recorded with provisioner "managed".

One renewal, in this order (each step safe to repeat):

1. **claim** — a conditional update of the registry item (``version`` unchanged, no live lease) to
   status "renewing" with a lease; of two overlapping runs exactly one gets it, the other does nothing.
2. **read** the secret (AWSCURRENT): the current certificate and key. If it already holds a newer
   certificate renewed from the registry's (a run died between 4 and 5), that one is *adopted*:
   finalize without issuing again.
3. **issue** — same subject, SANs, extensions and duration (``profile.renewal``), a new key when the
   item says ``rekey``; recorded with ``parent_serial`` (lineage) in one transaction that also checks
   the parent is not revoked (a revocation racing the renewal wins).
4. **write** the secret (PutSecretValue: the new version is AWSCURRENT, the old one AWSPREVIOUS), with
   a ClientRequestToken derived from (name, claimed version) so a retried call is idempotent.
5. **finalize** — conditional on the claimed version: new serial, validity and renewal time; lease off.
6. **announce** — ``stepless.CertificateRenewed`` on the default bus (batched).

Claiming first (rather than relying on the secret's idempotency token alone) is what makes overlapping
runs renew once: two runs would sign two different certificates, so their secret writes differ and a
token cannot merge them. The lease (15 min, the longest a Lambda can run) outlives any invocation, so
a live run never loses its claim; a dead one's item is taken over by the first run after the lease.

A failure anywhere keeps the old secret version (nothing was written, or the write is re-done),
counts ``failures``, records ``last_error`` and keeps the item due: the next run retries it (its
``renew_at`` becomes the failure time, the back of the due queue, so failing items cannot starve the
others). A revoked certificate is never renewed: the item is marked "revoked" and leaves
the index (logged, metric ``ManagedRevokedSkipped``).

The run queries the ``RenewAt`` index page by page (oldest due first), renews each page with a few
threads, and stops taking items when the invocation's remaining time falls under a margin: what it did
not reach is still due and the next run continues — nothing is lost.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime as dt
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from stepless import authority, aws, clock, settings
from stepless.authority import Authority
from stepless.errors import BadRequest
from stepless.managed import acm, events, secret
from stepless.observability import logger
from stepless.services.issuance import record
from stepless.stores import certificates, revocations
from stepless.stores import managed as store
from stepless.stores.certificates import CertificateRecord
from stepless.stores.managed import LostRace, Managed
from stepless.x509 import chain, profile
from stepless.x509.csr import SANs

PROVISIONER = "managed"
PROVISIONER_TYPE_CODE = 0  # step's "noop" provisioner type: issued by the CA itself, not via a provisioner
LEASE_SECONDS = 900
CA_WARNING = dt.timedelta(days=90)
MIN_DURATION = dt.timedelta(minutes=5)
PAGE_SIZE = 100
WORKERS_ENV = "STEPLESS_MANAGED_WORKERS"
MARGIN_ENV = "STEPLESS_MANAGED_MARGIN_MS"

# outcomes of one item
RENEWED, ADOPTED, FAILED, REVOKED, LEASED, LOST, DEFERRED, NOT_DUE = (
    "renewed", "adopted", "failed", "revoked", "leased", "lost_race", "deferred", "not_due")


class _Revoked(Exception):
    pass


# ------------------------------------------------------------------------------------------------ helpers


def new_key_like(key: PrivateKeyTypes) -> PrivateKeyTypes:
    """A fresh key of the same type and size (rekey)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ec.generate_private_key(key.curve)
    if isinstance(key, rsa.RSAPrivateKey):
        return rsa.generate_private_key(65537, key.key_size)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return ed25519.Ed25519PrivateKey.generate()
    raise BadRequest(f"unsupported key type {type(key).__name__}")


def window(auth: Authority, now: dt.datetime, duration: int) -> tuple[dt.datetime, dt.datetime]:
    """(notBefore, notAfter): backdated like every issuance, never beyond the intermediate."""
    not_after = min(now + dt.timedelta(seconds=duration), auth.intermediate.not_valid_after_utc)
    if not_after <= now:
        raise BadRequest("the intermediate certificate has expired: nothing can be issued")
    return now - auth.backdate, not_after


def _epoch(t: dt.datetime) -> int:
    return int(t.timestamp())


def _record(cert: x509.Certificate, parent: str | None, now: dt.datetime) -> CertificateRecord:
    return record(cert, provisioner=PROVISIONER, provisioner_type=PROVISIONER, parent_serial=parent,
                  issued_at=_epoch(now))


# -------------------------------------------------------------------------------------------- issuing


def issue(*, name: str, subject: str, sans: list[str], duration: dt.timedelta, rekey: bool, prefix: str,
          key: PrivateKeyTypes | None = None, replace: bool = False, acm_import: bool = False,
          acm_arn: str | None = None) -> Managed:
    """Issue a certificate, store it in the secret ``<prefix>/managed/<name>``, register it as managed.

    An existing name is refused unless ``replace`` (a new certificate and secret version; refused too
    while a run holds it). ``acm_import`` also imports it into ACM as a new certificate, ``acm_arn`` into
    that existing imported certificate (the API domain's); every renewal is then re-imported there.
    """
    store.check_name(name)
    if duration < MIN_DURATION:
        raise BadRequest(f"a managed certificate lasts at least {int(MIN_DURATION.total_seconds() // 60)} minutes")
    existing = store.get(name)
    if existing is not None and not replace:
        raise BadRequest(f"a managed certificate named {name!r} exists (remove it, or use --force)")
    auth = authority.get()
    now = clock.now()
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys(sans or [subject]))
    seconds = int(duration.total_seconds())
    not_before, not_after = window(auth, now, seconds)
    cert = profile.leaf(public_key=key.public_key(), common_name=subject, sans=SANs.split(names),
                        not_before=not_before, not_after=not_after, issuer=auth.intermediate,
                        signer=auth.intermediate_signer, provisioner=(PROVISIONER_TYPE_CODE, PROVISIONER, name),
                        crl_url=settings.crl_distribution_point())
    certificates.record_issuance(_record(cert, None, now), None)
    arn = secret.create(prefix, name, secret.payload(cert, auth.intermediate_pem, key))
    if acm_arn is None and existing is not None and not acm_import:
        acm_arn = existing.acm_arn  # a replaced managed certificate keeps its ACM target
    if acm_import or acm_arn:
        acm_arn = acm.put(cert, auth.intermediate_pem, key, arn=acm_arn, name=name, stack=prefix)
    serial, nb, na = str(cert.serial_number), _epoch(cert.not_valid_before_utc), _epoch(cert.not_valid_after_utc)
    item = Managed(name=name, subject=subject, sans=names, duration=seconds, rekey=rekey, serial=serial,
                   not_before=nb, not_after=na, renew_at=store.renew_at(name, serial, nb, na), secret_arn=arn,
                   version=1 if existing is None else existing.version + 1, created_at=_epoch(now),
                   acm_arn=acm_arn)
    store.put_new(item, expected=None if existing is None else existing.version, now=_epoch(now))
    logger.info("managed certificate issued", extra={"managed": name, "serial": serial, "secret": arn})
    return item


def remove(name: str, *, delete_secret: bool = False) -> Managed:
    """Stop renewing ``name`` (the registry item goes); the secret stays unless ``delete_secret``."""
    item = store.require(name)
    store.delete(name)
    if delete_secret:
        secret.delete(item.secret_arn)
    return item


# -------------------------------------------------------------------------------------------- one item


@dataclasses.dataclass
class Deadline:
    """When to stop taking items: the invocation's remaining time under ``margin_ms``."""

    context: Any = None
    margin_ms: int = 30_000

    def passed(self) -> bool:
        if self.context is None or not hasattr(self.context, "get_remaining_time_in_millis"):
            return False
        return self.context.get_remaining_time_in_millis() < self.margin_ms

    @classmethod
    def of(cls, context: Any, margin_ms: int | None = None) -> Deadline:
        """A margin of 1/5 of the time left at the start, between 2 and 30 s (or ``$STEPLESS_MANAGED_MARGIN_MS``)."""
        if margin_ms is None and os.environ.get(MARGIN_ENV):
            margin_ms = int(os.environ[MARGIN_ENV])
        if margin_ms is None:
            remaining = context.get_remaining_time_in_millis() if hasattr(context, "get_remaining_time_in_millis") \
                else 0
            margin_ms = max(2_000, min(30_000, remaining // 5))
        return cls(context, margin_ms)


@dataclasses.dataclass
class Pass:
    """The shared state of one run (or one forced renewal)."""

    auth: Authority
    recorder: events.Recorder
    events: events.EventBuffer
    deadline: Deadline = dataclasses.field(default_factory=Deadline)
    lease_seconds: int = LEASE_SECONDS


def process(item: Managed, p: Pass, *, revoked: bool = False, force: bool = False) -> str:
    """Renew ``item`` if it is (still) due and nobody else holds it; the outcome."""
    now = clock.now()
    ts = _epoch(now)
    if item.status == store.REVOKED:
        return REVOKED
    if revoked:
        return _skip_revoked(item, item.version, p)
    if not force and item.renew_at > ts:
        return NOT_DUE  # the GSI copy was stale: already renewed
    if item.lease_until is not None and item.lease_until >= ts:
        return LEASED
    if p.deadline.passed():
        return DEFERRED
    try:
        claimed = store.claim(item, ts, p.lease_seconds)
    except LostRace:
        return LOST
    try:
        return _renew(item, claimed, p, now)
    except _Revoked:
        return _skip_revoked(item, claimed, p)
    except LostRace:
        logger.warning("managed renewal lost its claim (lease expired?)", extra={"managed": item.name})
        return LOST
    except Exception as e:  # noqa: BLE001 - any failure: keep the old version, count, retry next run
        reason = f"{type(e).__name__}: {e}"
        logger.warning("managed renewal failed", extra={"managed": item.name, "serial": item.serial,
                                                        "failures": item.failures + 1, "reason": reason})
        p.recorder.add(events.MANAGED_RENEWAL_FAILED)
        try:
            store.fail(item, claimed, reason, ts)
        except Exception as e2:  # noqa: BLE001 - the lease expires anyway; the item stays due
            logger.warning("could not record the failure", extra={"managed": item.name, "reason": str(e2)})
        return FAILED


def _skip_revoked(item: Managed, version: int, p: Pass) -> str:
    try:
        store.mark_revoked(item, version)
    except LostRace:
        return LOST
    p.recorder.add(events.MANAGED_REVOKED_SKIPPED)
    logger.warning("managed certificate is revoked: not renewed, no longer managed",
                   extra={"managed": item.name, "serial": item.serial})
    return REVOKED


def _renew(item: Managed, claimed: int, p: Pass, now: dt.datetime) -> str:
    auth = p.auth
    old, key = secret.parse(secret.read(item.secret_arn))
    if str(old.serial_number) != item.serial:
        return _adopt(item, claimed, old, key, p, now)
    new_key = new_key_like(key) if item.rekey else key
    not_before, not_after = window(auth, now, item.duration)
    cert = profile.renewal(old, public_key=new_key.public_key() if item.rekey else None, not_before=not_before,
                           not_after=not_after, issuer=auth.intermediate, signer=auth.intermediate_signer)
    try:
        certificates.record_renewal(_record(cert, item.serial, now), None, item.serial, capped=False)
    except certificates.ParentRevoked as e:
        raise _Revoked() from e
    secret.write(item.secret_arn, secret.payload(cert, auth.intermediate_pem, new_key),
                 secret.token(item.name, claimed))
    if item.acm_arn:  # a failure here leaves the item due: the next run adopts the secret and imports again
        acm.put(cert, auth.intermediate_pem, new_key, arn=item.acm_arn)
    done = store.finalize(item, claimed, serial=str(cert.serial_number), not_before=_epoch(cert.not_valid_before_utc),
                          not_after=_epoch(cert.not_valid_after_utc), now=_epoch(now))
    _announce(done, cert, p)
    logger.info("managed certificate renewed", extra={"managed": item.name, "serial": done.serial,
                                                      "parent_serial": item.serial, "rekey": item.rekey,
                                                      "not_after": done.not_after})
    return RENEWED


def _adopt(item: Managed, claimed: int, current: x509.Certificate, key: PrivateKeyTypes, p: Pass,
           now: dt.datetime) -> str:
    """The secret is ahead of the registry (a run died after writing it, or a ``--force`` re-issue lost a
    race): adopt it when it is a managed certificate of ours renewed from, or newer than, the registered one."""
    serial = str(current.serial_number)
    rec = certificates.get(serial)
    newer = current.not_valid_before_utc.timestamp() >= item.not_before
    if rec is None or rec.provisioner != PROVISIONER or not (str(rec.parent_serial) == item.serial or newer):
        raise RuntimeError(f"the secret holds serial {serial}, not {item.serial} nor a later managed certificate")
    chain.check_ours(current, p.auth.intermediates)
    if item.acm_arn:
        acm.put(current, p.auth.intermediate_pem, key, arn=item.acm_arn)
    done = store.finalize(item, claimed, serial=serial, not_before=_epoch(current.not_valid_before_utc),
                          not_after=_epoch(current.not_valid_after_utc), now=_epoch(now))
    _announce(done, current, p)
    logger.info("managed certificate: adopted the renewal already in the secret",
                extra={"managed": item.name, "serial": serial, "parent_serial": item.serial})
    return ADOPTED


def _announce(item: Managed, cert: x509.Certificate, p: Pass) -> None:
    p.recorder.add(events.MANAGED_RENEWED)
    p.events.add(events.renewed_entry(name=item.name, serial=item.serial, not_after=cert.not_valid_after_utc,
                                      secret_arn=item.secret_arn))


# -------------------------------------------------------------------------------------------------- run


def revoked_serials(serials: list[str]) -> set[str]:
    """Which of ``serials`` are revoked (consistent reads, batched by the store)."""
    return revocations.revoked_among(serials)


def check_ca(auth: Authority, now: dt.datetime, recorder: events.Recorder) -> list[str]:
    """Warn (metric ``CAExpiringSoon``) for the intermediate and roots within 90 days of their end.

    The SSH CAs are bare public keys with no validity period: nothing expires there, nothing to check.
    """
    warned = []
    for label, cert in [("intermediate", auth.intermediate), *(("root", r) for r in auth.roots)]:
        left = cert.not_valid_after_utc - now
        if left <= CA_WARNING:
            recorder.add(events.CA_EXPIRING_SOON)
            warned.append(label)
            logger.warning("CA certificate expires soon", extra={
                "certificate": label, "not_after": cert.not_valid_after_utc.isoformat(),
                "days_left": max(0, left.days), "subject": cert.subject.rfc4514_string()})
    return warned


def _expiring(item: Managed, now: dt.datetime) -> bool:
    return item.not_after - _epoch(now) <= max(0, item.lifetime) // 10


def _prepare(auth: Authority) -> None:
    """Create the shared clients and the signer in this thread (botocore sessions are not thread-safe)."""
    for service in ("dynamodb", "secretsmanager", "events"):
        aws.client(service)
    auth.intermediate_signer.public_key()


def run(context: Any = None, *, page_size: int = PAGE_SIZE, workers: int | None = None,
        margin_ms: int | None = None, lease_seconds: int = LEASE_SECONDS, flush_metrics: bool = True) -> dict[str, Any]:
    """One scheduled pass: renew the due managed certificates that fit before the deadline."""
    auth = authority.get()
    recorder = events.Recorder()
    p = Pass(auth, recorder, events.EventBuffer(recorder), Deadline.of(context, margin_ms), lease_seconds)
    start_time = clock.now()
    ca_warnings = check_ca(auth, start_time, recorder)
    _prepare(auth)
    workers = workers or int(os.environ.get(WORKERS_ENV) or 8)
    outcomes: collections.Counter[str] = collections.Counter()
    now_ts, start, pages, complete = _epoch(start_time), None, 0, True
    pool = concurrent.futures.ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        while True:
            if p.deadline.passed():
                complete = False
                break
            page, start = store.due_page(now_ts, limit=page_size, start=start)
            pages += 1
            revoked = revoked_serials([i.serial for i in page]) if page else set()

            def one(item: Managed, revoked: set[str] = revoked) -> tuple[Managed, str]:
                return item, process(item, p, revoked=item.serial in revoked)

            results = pool.map(one, page) if pool else map(one, page)
            for item, outcome in results:
                outcomes[outcome] += 1
                if outcome in (FAILED, DEFERRED) and _expiring(item, clock.now()):
                    recorder.add(events.MANAGED_EXPIRING_SOON)
                    logger.error("managed certificate expires soon and is not renewed",
                                 extra={"managed": item.name, "serial": item.serial, "not_after": item.not_after,
                                        "failures": item.failures + (outcome == FAILED),
                                        "last_error": item.last_error})
            p.events.flush()
            if outcomes[DEFERRED]:
                complete = False
                break
            if not start:
                break
    finally:
        if pool:
            pool.shutdown(wait=True)
        p.events.flush()
    recorder.add(events.MANAGED_DEFERRED, outcomes[DEFERRED])
    counts = recorder.flush() if flush_metrics else dict(recorder.counts)
    summary = {"due": sum(outcomes.values()), **{k: outcomes[k] for k in
               (RENEWED, ADOPTED, FAILED, REVOKED, LEASED, LOST, DEFERRED, NOT_DUE)},
               "pages": pages, "complete": complete, "events": p.events.sent, "caExpiringSoon": ca_warnings,
               "metrics": counts}
    logger.info("managed renewal run", extra={k: v for k, v in summary.items() if k != "metrics"})
    return summary


def renew_now(name: str) -> tuple[str, Managed]:
    """Renew ``name`` now, due or not (``stepless ca managed renew``); (outcome, item after)."""
    item = store.require(name)
    if item.status == store.REVOKED:
        raise BadRequest(f"managed certificate {name!r} is revoked; remove it and issue a new one")
    auth = authority.get()
    recorder = events.Recorder()
    p = Pass(auth, recorder, events.EventBuffer(recorder))
    outcome = process(item, p, revoked=bool(revoked_serials([item.serial])), force=True)
    p.events.flush()
    return outcome, store.require(name)
