"""``stepless certificate create|inspect|fingerprint``: local X.509 work, flag for flag with step."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless import clock
from stepless.cli import inspect as render
from stepless.cli import keys, ui
from stepless.cli.main import certificate
from stepless.durations import TimeArg
from stepless.errors import ClientError, StepError

ENCRYPT_PROMPT = "Please enter the password to encrypt the private key: "
PROFILES = ("leaf", "intermediate-ca", "root-ca", "self-signed")
LEAF_LIFETIME = dt.timedelta(hours=24)
CA_LIFETIME = dt.timedelta(days=3650)


def _time_flag(value: str | None, flag: str) -> TimeArg:
    try:
        return TimeArg.parse(value, flag)
    except StepError as e:
        raise ClientError(
            f"invalid value '{value}' for flag '--{flag}': use a duration or an RFC 3339 time"
        ) from e


def _validity(
    not_before: str | None, not_after: str | None, default: dt.timedelta
) -> tuple[dt.datetime, dt.datetime]:
    now = clock.now().replace(microsecond=0)
    nb = _time_flag(not_before, "not-before").resolve(now) or now
    na = _time_flag(not_after, "not-after").resolve(now) or nb + default
    if na <= nb:
        raise ClientError("flag '--not-after' must be after '--not-before'")
    return nb, na


def _ski(pub: keys.PublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(pub)


def build_certificate(
    profile: str,
    key: keys.PrivateKey,
    subject: str,
    sans: list[str],
    not_before: dt.datetime,
    not_after: dt.datetime,
    issuer: x509.Certificate | None = None,
    issuer_key: keys.PrivateKey | None = None,
) -> x509.Certificate:
    """A certificate for ``key`` with step's ``certificate create`` profile; self-signed without issuer."""
    pub = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]) if subject else x509.Name([])
    signer = issuer_key or key
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_ski(pub), critical=False)
    )
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if profile in ("root-ca", "intermediate-ca"):
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(
            x509.BasicConstraints(ca=True, path_length=1 if profile == "root-ca" else 0), critical=True
        )
    else:
        is_rsa = isinstance(pub, rsa.RSAPublicKey)
        b = b.add_extension(
            x509.KeyUsage(True, False, is_rsa, False, False, False, False, False, False), critical=True
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        names = keys.general_names(sans or [subject])
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=not subject)
    if sans and profile in ("root-ca", "intermediate-ca"):
        b = b.add_extension(x509.SubjectAlternativeName(keys.general_names(sans)), critical=False)
    try:
        return b.sign(signer, keys.signature_hash(signer))
    except ValueError as e:
        raise ClientError(f"error creating certificate: {e}") from e


@certificate.command("create")
@click.argument("subject")
@click.argument("crt_file", metavar="CRT_OR_CSR")
@click.argument("key_file", metavar="KEY")
@click.option("--csr", is_flag=True, help="Generate a certificate signing request instead of a certificate.")
@click.option(
    "--profile", type=click.Choice(PROFILES), default="leaf", show_default=True, help="Certificate profile."
)
@click.option(
    "--ca", "ca_file", metavar="FILE", help="The certificate authority used to sign the new certificate."
)
@click.option("--ca-key", metavar="FILE", help="The private key of the --ca certificate.")
@click.option("--ca-password-file", metavar="FILE", help="The file with the password of the --ca-key.")
@click.option("--san", "sans", multiple=True, metavar="NAME", help="Subject Alternative Name (repeatable).")
@click.option("--kty", default="EC", show_default=True, help="Key type: EC, OKP or RSA.")
@click.option(
    "--crv", "--curve", "crv", default=None, help="Curve: P-256 (default), P-384, P-521; Ed25519 for OKP."
)
@click.option("--size", type=int, default=None, help="RSA key size in bits (default 2048).")
@click.option("--not-before", metavar="TIME|DURATION", help="Start of validity (RFC 3339 or a duration).")
@click.option("--not-after", metavar="TIME|DURATION", help="End of validity (RFC 3339 or a duration).")
@click.option("--bundle", is_flag=True, help="Append the --ca certificate to the new certificate.")
@click.option(
    "--password-file", metavar="FILE", help="The file with the password to encrypt the private key."
)
@click.option("--no-password", is_flag=True, help="Do not encrypt the private key (requires --insecure).")
@click.option("--insecure", is_flag=True, help="Allow insecure choices such as --no-password.")
@click.option("--subtle", is_flag=True, help="Allow the self-signed profile.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing files without asking.")
def create(
    subject: str,
    crt_file: str,
    key_file: str,
    csr: bool,
    profile: str,
    ca_file: str | None,
    ca_key: str | None,
    ca_password_file: str | None,
    sans: tuple[str, ...],
    kty: str,
    crv: str | None,
    size: int | None,
    not_before: str | None,
    not_after: str | None,
    bundle: bool,
    password_file: str | None,
    no_password: bool,
    insecure: bool,
    subtle: bool,
    force: bool,
) -> None:
    """Create a certificate or a certificate signing request (--csr) and a new private key."""
    if no_password and not insecure:
        raise ClientError("flag '--no-password' requires the '--insecure' flag")
    if no_password and password_file:
        raise ClientError("flag '--no-password' is incompatible with '--password-file'")
    if Path(crt_file).resolve() == Path(key_file).resolve():
        raise ClientError("positional arguments CRT_FILE and KEY_FILE must be different files")
    issuer: x509.Certificate | None = None
    issuer_key: keys.PrivateKey | None = None
    if not csr:
        if profile == "self-signed" and not subtle:
            raise ClientError("'--profile self-signed' requires the '--subtle' flag")
        if profile in ("leaf", "intermediate-ca"):
            if not ca_file:
                raise ClientError(f"'--profile {profile}' requires the '--ca' flag (or use --csr)")
            if not ca_key:
                raise ClientError(f"'--profile {profile}' requires the '--ca-key' flag")
        elif ca_file or ca_key:
            raise ClientError(f"flag '--ca' is incompatible with '--profile {profile}'")
    if bundle and (csr or not ca_file):
        raise ClientError("flag '--bundle' requires the '--ca' flag")
    for path in (crt_file, key_file):
        ui.confirm_overwrite(path, force)
    validity = (
        None
        if csr
        else _validity(not_before, not_after, CA_LIFETIME if profile.endswith("-ca") else LEAF_LIFETIME)
    )
    if not csr and ca_file and ca_key:
        issuer = keys.load_certificates(ca_file)[0]
        issuer_key = keys.load_private_key(ca_key, ca_password_file, flag="--ca-password-file")
        if keys.public_key_pem(issuer_key) != keys.public_key_pem(issuer.public_key()):  # type: ignore[arg-type]
            raise ClientError(f"the key {ca_key} does not match the certificate {ca_file}")
    key = keys.generate_key(kty, crv, size)
    password = None if no_password else ui.password(password_file, ENCRYPT_PROMPT, confirm=True,
                                                     flag="--password-file")
    if password == "":
        raise ClientError("the password to encrypt the private key cannot be empty")
    key_pem = keys.key_to_pem(key, password)
    if csr:
        body = keys.make_csr(key, subject, list(sans)).public_bytes(serialization.Encoding.PEM)
        what = "certificate signing request"
    else:
        assert validity is not None
        cert = build_certificate(profile, key, subject, list(sans), *validity, issuer, issuer_key)
        body = cert.public_bytes(serialization.Encoding.PEM)
        if bundle and issuer is not None:
            body += issuer.public_bytes(serialization.Encoding.PEM)
        what = "certificate"
    ui.write_files({crt_file: body, key_file: key_pem}, mode=0o600, force=True)
    with contextlib.suppress(OSError):
        os.chmod(crt_file, 0o644)
    ui.info(f"Your {what} has been saved in {crt_file}.")
    ui.info(f"Your private key has been saved in {key_file}.")


@certificate.command("inspect")
@click.argument("file", metavar="FILE")
@click.option("--short", is_flag=True, help="Print a short summary.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "pem"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option("--bundle", is_flag=True, help="Inspect every certificate in the file, not only the first.")
def inspect_cmd(file: str, short: bool, fmt: str, bundle: bool) -> None:
    """Print the contents of a certificate or CSR (FILE may be - for standard input)."""
    objects = render.parse_objects(keys.read_input(file), "standard input" if file == "-" else file)
    if not bundle:
        objects = objects[:1]
    if fmt == "pem":
        for obj in objects:
            click.echo(obj.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
        return
    if fmt == "json":
        docs = [render.to_json(o) for o in objects]
        click.echo(json.dumps(docs if bundle else docs[0], indent=2, ensure_ascii=False))
        return
    fn = render.short_text if short else render.full_text
    click.echo(("\n\n" if not short else "\n").join(fn(o) for o in objects))


@certificate.command("fingerprint")
@click.argument("file", metavar="FILE")
@click.option("--bundle", is_flag=True, help="Print the fingerprint of every certificate in the file.")
def fingerprint(file: str, bundle: bool) -> None:
    """Print the SHA-256 fingerprint (hex) of a certificate."""
    certs = keys.parse_certificates(keys.read_input(file), "standard input" if file == "-" else file)
    for cert in certs if bundle else certs[:1]:
        click.echo(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest())
