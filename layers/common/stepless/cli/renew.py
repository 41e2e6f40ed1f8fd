"""``stepless ca renew`` (mTLS or an x5cInsecure token; optionally as a daemon) and ``ca revoke``."""

from __future__ import annotations

import base64
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import click
import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import jose
from stepless.cli import config, keys, options, renewal, tokens, ui
from stepless.cli.ca import chain_pem
from stepless.cli.client import CAClient, TLSRefused
from stepless.cli.main import ca, certificate
from stepless.errors import ClientError

NO_CLIENT_CERT = "client certificate"  # the CA's 401 when the mTLS path got no certificate


def renew_token(ca_url: str, chain: list[x509.Certificate], key: object, path: str = "/1.0/renew") -> str:
    """step's x5cInsecure renewal token: signed by the certificate's own key."""
    leaf = chain[0]
    cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    now = int(time.time())
    claims = {"iss": "step-ca-client/1.0", "sub": str(cn[0].value) if cn else "", "aud": ca_url + path,
              "iat": now, "nbf": now, "exp": now + tokens.VALIDITY, "jti": os.urandom(32).hex()}
    header = {"x5cInsecure": [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain[:2]]}
    alg = jose.default_alg(jose.public_jwk(key))
    return jwt.encode(claims, key, algorithm=alg, headers=header)  # type: ignore[arg-type]


def _mtls_client(ca_url: str, root: str, crt: str, key: object) -> CAClient:
    """A client presenting the certificate (key written to a private temp file for the ssl module)."""
    pem = keys.key_to_pem(key, None)  # type: ignore[arg-type]
    fd, path = tempfile.mkstemp(prefix="stepless-key-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return CAClient(ca_url, root, client_cert=(crt, path))
    finally:
        os.unlink(path)


def renew_once(ca_url: str, root: str, crt: str, key_file: str, password_file: str | None, mode: str) -> dict:
    """POST /renew over mTLS (``mode`` mtls/auto) or with a token (token/auto fallback); the SignResponse."""
    chain = keys.load_certificates(crt)
    key = keys.load_private_key(key_file, password_file, flag="--password-file")
    check_issued_under(chain, root, crt)
    leaf = chain[0]
    expired = dt.datetime.now(dt.UTC) > leaf.not_valid_after_utc
    if expired and mode == "mtls":  # the CA refuses an expired certificate in the TLS handshake: say why
        ending = ("its provisioner allows renewal after expiry: use --token-auth"
                  if renewable_after_expiry(CAClient(ca_url, root), leaf) else
                  "its provisioner does not allow renewal after expiry: get a new one (stepless ca certificate)")
        raise ClientError(f"the certificate in {crt} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
                          f"so the CA refuses it for mutual TLS; {ending}")
    if expired and mode == "auto":  # only a renew token can still work (allowRenewalAfterExpiry)
        try:
            return _token_renew(ca_url, root, chain, key)
        except TLSRefused:
            raise
        except ClientError as e:
            raise ClientError(f"the certificate in {crt} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC "
                              f"and the CA refuses to renew it ({e}): get a new one (stepless ca certificate)") from e
    if mode in ("mtls", "auto"):
        try:
            return _mtls_client(ca_url, root, crt, key).post("/renew")
        except TLSRefused:
            raise
        except ClientError as e:
            if mode == "mtls" or NO_CLIENT_CERT not in str(e):
                raise
    return _token_renew(ca_url, root, chain, key)


def _token_renew(ca_url: str, root: str, chain: list[x509.Certificate], key: object) -> dict:
    """POST /renew with an x5cInsecure renew token signed by the certificate's key."""
    token = renew_token(ca_url, chain, key)
    return CAClient(ca_url, root).post("/renew", headers={"Authorization": f"Bearer {token}"})


def check_issued_under(chain: list[x509.Certificate], root: str, crt: str) -> None:
    """A readable error when the certificate's chain (leaf + intermediate) does not lead to the root the CLI
    trusts: the CA's root changed since it was issued (the CA would refuse it with an ``unknown CA`` alert)."""
    if len(chain) < 2:
        return  # a leaf alone: nothing to check here, the CA decides
    anchors = keys.load_certificates(root)
    try:
        chain[0].verify_directly_issued_by(chain[1])
    except (ValueError, TypeError, InvalidSignature):
        return  # not a chain this check understands
    for anchor in anchors:
        if chain[1] == anchor:
            return
        try:
            chain[1].verify_directly_issued_by(anchor)
            return
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise ClientError(f"the certificate in {crt} was not issued under the CA's root ({root}): the CA's root has "
                      "changed since; bootstrap again (stepless ca bootstrap --ca-url URL --fingerprint FP) and get "
                      "a new certificate (stepless ca certificate)")


def renewable_after_expiry(client: CAClient, leaf: x509.Certificate) -> bool:
    """Whether the provisioner that issued ``leaf`` (its provisioner extension) lists
    ``allowRenewalAfterExpiry`` in GET /provisioners: then a renew token still works once it has expired."""
    from stepless.x509 import extensions

    issued_by = extensions.of(leaf)
    if issued_by is None:
        return False
    for entry in client.provisioners():
        if entry.get("name") == issued_by[1]:
            return bool((entry.get("claims") or {}).get("allowRenewalAfterExpiry"))
    return False


@ca.command("renew")
@click.argument("crt_file")
@click.argument("key_file")
@options.connection
@click.option("--out", "--output-file", "out", metavar="FILE", help="Write the new certificate to FILE.")
@click.option("--password-file", metavar="FILE", help="The password of an encrypted KEY_FILE.")
@click.option("--mtls/--token-auth", "mtls", default=None,
              help="Authenticate with the certificate over mutual TLS, or with a renew token (default: mTLS, "
                   "falling back to the token when the CA does not ask for a client certificate).")
@click.option("--daemon", is_flag=True, help="Keep running, renewing at about 2/3 of each certificate's lifetime.")
@click.option("--expires-in", metavar="DURATION", help="Renew when the certificate expires within DURATION.")
@click.option("--renew-period", metavar="DURATION", help="Renew on this fixed period in daemon mode.")
@click.option("--exec", "exec_cmd", metavar="COMMAND", help="Run COMMAND after each renewal.")
@click.option("--pid", type=int, help="Signal this process after each renewal.")
@click.option("--pid-file", metavar="FILE", help="Read the process id to signal from FILE.")
@click.option("--signal", "signum", type=int, default=renewal.DEFAULT_SIGNAL, show_default=True,
              help="The signal number to send.")
@options.force
def renew_cmd(crt_file, key_file, ca_url, root, out, password_file, mtls, daemon, expires_in, renew_period,
              exec_cmd, pid, pid_file, signum, force) -> None:
    """Renew the certificate in CRT_FILE, authenticated by it and its KEY_FILE."""
    from stepless.durations import parse_duration

    url, root_file = config.ca_url(ca_url), config.root(root)
    mode = "auto" if mtls is None else ("mtls" if mtls else "token")
    out = out or crt_file
    try:
        exp_in = parse_duration(expires_in) if expires_in else None
        period = parse_duration(renew_period) if renew_period else None
    except ValueError as e:
        raise ClientError(str(e)) from e
    hook = renewal.after_renew(exec_cmd, renewal.read_pid(pid, pid_file), signum)
    if not daemon:
        leaf = keys.load_certificates(crt_file)[0]
        if exp_in and leaf.not_valid_after_utc - dt.datetime.now(dt.UTC) > exp_in:
            ui.info(f"certificate not renewed: it expires in more than {expires_in}")
            return
        ui.confirm_overwrite(out, force)
        res = renew_once(url, root_file, crt_file, key_file, password_file, mode)
        ui.write_files({out: chain_pem(res)}, mode=0o644, force=True)
        ui.info(f"Your certificate has been saved in {out}.")
        if exec_cmd or pid or pid_file:
            hook()
        return
    run_daemon(lambda: renew_once(url, root_file, out if Path(out).exists() else crt_file, key_file,
                                  password_file, mode),
               out, crt_file, hook, expires_in=exp_in, renew_period=period)


def run_daemon(renew, out: str, crt_file: str, hook, *, expires_in=None, renew_period=None,  # noqa: ANN001
               now=lambda: dt.datetime.now(dt.UTC), sleep=time.sleep, max_renewals: int | None = None) -> int:
    """Renew forever (or ``max_renewals`` times): wait until due, retry with backoff until expiry."""
    done = 0
    current = crt_file
    while max_renewals is None or done < max_renewals:
        leaf = keys.load_certificates(current)[0]
        wait = renewal.next_renewal(leaf, now(), expires_in=expires_in, renew_period=renew_period)
        ui.info(f"next renewal in {int(wait.total_seconds())}s")
        sleep(wait.total_seconds())
        attempt = 0
        while True:
            try:
                res = renew()
                break
            except ClientError as e:
                if now() >= leaf.not_valid_after_utc:
                    raise ClientError(f"certificate expired before it could be renewed: {e}") from e
                delay = renewal.backoff(attempt)
                ui.info(f"renewal failed ({e}); retrying in {delay:.1f}s")
                sleep(delay)
                attempt += 1
        ui.write_files({out: chain_pem(res)}, mode=0o644, force=True)
        ui.info(f"Your certificate has been saved in {out}.")
        current = out
        done += 1
        try:
            hook()
        except ClientError as e:
            ui.info(f"after-renew action failed: {e}")
    return done


@ca.command("revoke")
@click.argument("serial", required=False)
@options.connection
@click.option("--cert", "cert_file", metavar="FILE", help="Revoke this certificate, authenticated by it (mTLS).")
@click.option("--key", "key_file", metavar="FILE", help="The private key of --cert.")
@options.token
@options.provisioner
@options.provisioner_password_file
@click.option("--reason", default="", help="The reason for the revocation.")
@click.option("--reasonCode", "--reason-code", "reason_code", type=int, default=0, help="RFC 5280 reason code.")
@click.option("--lineage", is_flag=True, help="Also revoke every certificate renewed from this one.")
def revoke_cmd(serial, ca_url, root, cert_file, key_file, token, provisioner, password_file, reason, reason_code,
               lineage) -> None:
    """Revoke a certificate: by SERIAL with a token, or with --cert/--key over mutual TLS."""
    url, root_file = config.ca_url(ca_url), config.root(root)
    body = {"reasonCode": reason_code, "reason": reason, "passive": True}
    if lineage:
        body["lineage"] = True
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise ClientError("flags --cert and --key must be used together")
        if token:
            raise ClientError("flags --cert and --token are incompatible")
        chain = keys.load_certificates(cert_file)
        leaf = chain[0]
        serial = str(leaf.serial_number)
        check_issued_under(chain, root_file, cert_file)
        if dt.datetime.now(dt.UTC) > leaf.not_valid_after_utc:
            raise ClientError(f"the certificate in {cert_file} has expired, so the CA refuses it for mutual TLS: "
                              f"revoke it by serial with a token (stepless ca revoke {serial})")
        key = keys.load_private_key(key_file, None)
        client = _mtls_client(url, root_file, cert_file, key)
        client.post("/revoke", {"serial": serial, **body})
    else:
        if not serial:
            raise ClientError("missing SERIAL (or use --cert and --key)")
        serial = normalize_serial(serial)
        client = CAClient(url, root_file)
        if not token:
            token = tokens.generate(client, root_file, tokens.TokenRequest("revoke", serial),
                                    tokens.Credentials(provisioner, password_file))
        client.post("/revoke", {"serial": serial, "ott": token, **body})
    click.echo(f"Certificate with Serial Number {serial} has been revoked.")


def normalize_serial(serial: str) -> str:
    """A decimal serial (hex accepted with a 0x prefix or colons)."""
    s = serial.strip()
    try:
        if s.lower().startswith("0x"):
            return str(int(s[2:], 16))
        if ":" in s:
            return str(int(s.replace(":", ""), 16))
        return str(int(s, 10))
    except ValueError as e:
        raise ClientError(f"invalid serial number {serial!r}") from e


@certificate.command("needs-renewal")
@click.argument("crt_file")
@click.option("--expires-in", metavar="DURATION|PERCENT",
              help="Renew when it expires within DURATION, or within PERCENT% of its lifetime (default 33%).")
def needs_renewal_cmd(crt_file, expires_in) -> None:
    """Exit 0 when CRT_FILE is due for renewal (last third of its life by default), else exit 1."""
    from stepless.durations import parse_duration

    leaf = keys.load_certificates(crt_file)[0]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    left = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    threshold = lifetime / 3
    if expires_in:
        try:
            threshold = (lifetime * float(expires_in[:-1]) / 100) if expires_in.endswith("%") \
                else parse_duration(expires_in)
        except ValueError as e:
            raise ClientError(f"invalid --expires-in {expires_in!r}") from e
    if left > threshold:
        raise SystemExit(1)
