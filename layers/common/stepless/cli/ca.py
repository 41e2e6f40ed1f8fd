"""``stepless ca …``: tokens, certificates and bootstrap against a running CA."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless.cli import config, keys, options, tokens, ui
from stepless.cli.client import CAClient
from stepless.cli.main import ca, cli
from stepless.errors import ClientError


def connect(ca_url: str | None, root: str | None) -> tuple[CAClient, str]:
    """A client for the configured CA, and the root file it trusts."""
    root_file = config.root(root)
    return CAClient(config.ca_url(ca_url), root_file), root_file


def csr_names(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(common name, SANs as strings) of a CSR."""
    cn = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in ext.get_values_for_type(x509.DNSName)]
        sans += [str(v) for v in ext.get_values_for_type(x509.IPAddress)]
        sans += [str(v) for v in ext.get_values_for_type(x509.RFC822Name)]
        sans += [str(v) for v in ext.get_values_for_type(x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        sans = []
    return (str(cn[0].value) if cn else ""), sans


def sign_csr(client: CAClient, csr_pem: str, token: str, not_before: str, not_after: str) -> dict:
    """POST /sign; returns the SignResponse."""
    ui.done("CA", client.ca_url)
    return client.post("/sign", {"csr": csr_pem, "ott": token, "notBefore": not_before, "notAfter": not_after})


def chain_pem(response: dict) -> bytes:
    """Leaf + intermediate, as step writes the certificate file."""
    chain = response.get("certChain") or [response["crt"], response["ca"]]
    return "".join(c if c.endswith("\n") else c + "\n" for c in chain).encode()


@ca.command("token")
@click.argument("subject")
@options.connection
@options.provisioner
@options.provisioner_password_file
@options.san
@click.option("--revoke", is_flag=True, help="Create a token for revoking the certificate with serial SUBJECT.")
@click.option("--output-file", metavar="FILE", help="Write the token to FILE instead of stdout.")
@options.x5c
def token_cmd(subject, ca_url, root, provisioner, password_file, san, revoke, output_file, x5c_cert, x5c_key,
              console) -> None:
    """Generate a one-time token for SUBJECT (a name, or a serial number with --revoke)."""
    client, root_file = connect(ca_url, root)
    if revoke and san:
        raise ClientError("flags --revoke and --san are incompatible")
    req = tokens.TokenRequest("revoke" if revoke else "sign", subject, list(san))
    creds = tokens.Credentials(provisioner, password_file, x5c_cert, x5c_key, console)
    tok = tokens.generate(client, root_file, req, creds)
    if output_file:
        ui.write_files({output_file: (tok + "\n").encode()}, force=True)
    else:
        click.echo(tok)


@ca.command("certificate")
@click.argument("subject")
@click.argument("crt_file", required=False)
@click.argument("key_file", required=False)
@options.connection
@options.token
@options.provisioner
@options.provisioner_password_file
@options.san
@options.not_before
@options.not_after
@options.key_flags
@options.force
@options.x5c
@click.option("--managed", metavar="NAME",
              help="Administrator: keep key and chain in the secret <stack>/managed/NAME, renewed on schedule.")
@click.option("--rekey", is_flag=True, help="With --managed: a new private key at every renewal.")
@options.stack
def certificate_cmd(subject, crt_file, key_file, ca_url, root, token, provisioner, password_file, san,
                    not_before, not_after, kty, crv, size, force, x5c_cert, x5c_key, console, managed,
                    rekey, stack_name) -> None:
    """Generate a key and get a certificate for SUBJECT in one step (or a managed one with --managed)."""
    if managed:
        from stepless.cli.managed import issue_cmd

        return click.get_current_context().invoke(
            issue_cmd, subject=subject, name=managed, stack_name=stack_name, san=san,
            not_after=not_after or "24h", rekey=rekey, kty=kty, crv=crv, size=size, force=force)
    if stack_name:
        raise ClientError("--stack only applies with --managed")
    missing = [n for n, v in (("CRT_FILE", crt_file), ("KEY_FILE", key_file)) if not v]
    if missing:
        raise click.UsageError(f"missing argument{'s' if len(missing) > 1 else ''} {' and '.join(missing)}")
    for f in (crt_file, key_file):
        ui.confirm_overwrite(f, force)
    client, root_file = connect(ca_url, root)
    given = bool(token)
    if not token:
        token = tokens.generate(client, root_file, tokens.TokenRequest("sign", subject, list(san) or [subject]),
                                tokens.Credentials(provisioner, password_file, x5c_cert, x5c_key, console))
    cn, sans = request_names(token, subject, list(san), token_given=given)
    key = keys.generate_key(kty, crv, size)
    csr = keys.make_csr(key, cn, sans)
    res = sign_csr(client, csr.public_bytes(Encoding.PEM).decode(), token, not_before, not_after)
    ui.write_files({crt_file: chain_pem(res), key_file: keys.key_to_pem(key, None)}, force=True)
    ui.done("Certificate", crt_file)
    ui.done("Private Key", key_file)


def token_claims(token: str) -> dict:
    """A token's claims, not verified (the CA verifies): what step reads to build the request."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise ClientError(f"error parsing token: {e}") from e
    if not isinstance(claims, dict):
        raise ClientError("error parsing token: its payload is not a JSON object")
    return claims


def is_oidc(claims: dict) -> bool:
    """step's ``Payload.Type() == OIDC``: an email and neither of the step one-time token claims."""
    return not claims.get("sha") and not claims.get("sans") and bool(claims.get("email"))


def request_names(token: str, subject: str, flag_sans: list[str], *, token_given: bool) -> tuple[str, list[str]]:
    """(common name, SANs) of the CSR for ``token``, as step's certificate flow builds it.

    A step token (JWK, X5C): CN = its ``sub``, SANs = its ``sans`` (else the subject); SUBJECT must be the
    token's subject (case-insensitively) and ``--san`` goes with a token only when step made the token here.
    An OIDC ID token: CN = its ``sub`` (an identity provider's opaque id), SANs = the ``--san`` names then
    its ``email``, and SUBJECT must be the first email of those.
    """
    claims = token_claims(token)
    if is_oidc(claims):
        sans = [*flag_sans, str(claims["email"])]
        first = next(s for s in sans if "@" in s and "://" not in s)
        if first != subject:
            raise ClientError(f"token email '{first}' and argument '{subject}' do not match")
        return str(claims.get("sub") or ""), sans
    if token_given and flag_sans:
        raise ClientError("flags --token and --san are mutually exclusive")
    sub = str(claims.get("sub") or subject)
    if sub.casefold() != subject.casefold():
        raise ClientError(f"token subject '{sub}' and argument '{subject}' do not match")
    sans = claims.get("sans")
    return sub, [str(s) for s in sans] if isinstance(sans, list) and sans else [sub]


@ca.command("sign")
@click.argument("csr_file")
@click.argument("crt_file")
@options.connection
@options.token
@options.provisioner
@options.provisioner_password_file
@options.not_before
@options.not_after
@options.force
@options.x5c
def sign_cmd(csr_file, crt_file, ca_url, root, token, provisioner, password_file, not_before, not_after,
             force, x5c_cert, x5c_key, console) -> None:
    """Get a certificate for the certificate signing request in CSR_FILE."""
    ui.confirm_overwrite(crt_file, force)
    try:
        csr = x509.load_pem_x509_csr(Path(csr_file).read_bytes())
    except OSError as e:
        raise ClientError(f"error reading {csr_file}: {e.strerror}") from e
    except ValueError as e:
        raise ClientError(f"{csr_file} is not a PEM certificate request") from e
    client, root_file = connect(ca_url, root)
    cn, sans = csr_names(csr)
    if not token:
        token = tokens.generate(client, root_file, tokens.TokenRequest("sign", cn, sans or [cn]),
                                tokens.Credentials(provisioner, password_file, x5c_cert, x5c_key, console))
    subject = str(token_claims(token).get("sub") or "")
    if subject.casefold() != cn.casefold():  # as step: before any request
        raise ClientError(f"token subject '{subject}' and CSR CommonName '{cn}' do not match")
    res = sign_csr(client, csr.public_bytes(Encoding.PEM).decode(), token, not_before, not_after)
    ui.write_files({crt_file: chain_pem(res)}, mode=0o644, force=True)
    ui.done("Certificate", crt_file)


def fetch_root(url: str, fingerprint: str) -> x509.Certificate:
    """GET /root/FINGERPRINT (TLS unverified: the answer is checked against the fingerprint instead)."""
    res = CAClient(url, None).get(f"/root/{fingerprint}")
    try:
        cert = x509.load_pem_x509_certificate(str(res.get("ca", "")).encode())
    except ValueError as e:
        raise ClientError("the CA returned an invalid root certificate") from e
    got = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    if got != fingerprint:
        raise ClientError(f"the root certificate fingerprint {got} does not match {fingerprint}")
    return cert


@ca.command("bootstrap")
@click.option("--ca-url", "ca_url", required=True, metavar="URI", help="The URI of the CA.")
@click.option("--fingerprint", required=True, metavar="FINGERPRINT", help="The SHA-256 fingerprint of the root.")
@options.force
def bootstrap_cmd(ca_url, fingerprint, force) -> None:
    """Fetch the root by its fingerprint, check it, and save the CA URL and root as defaults."""
    url = config.ca_url(ca_url)
    wanted = fingerprint.lower().replace(":", "").replace("-", "")
    cert = fetch_root(url, wanted)
    root_path = config.home() / "certs" / "root_ca.crt"
    root_path.parent.mkdir(parents=True, exist_ok=True)
    ui.write_files({root_path: cert.public_bytes(Encoding.PEM)}, mode=0o644, force=force or True)
    ui.info(f"The root certificate has been saved in {root_path}.")
    values = {"ca-url": url, "fingerprint": wanted, "root": str(root_path)}
    local = config.defaults().get("local")
    if isinstance(local, dict) and local.get("ca-url") == url:  # re-bootstrapping `stepless dev`'s own CA
        values["local"] = local
    path = config.save_defaults(values)
    ui.info(f"The authority configuration has been saved in {path}.")


@ca.command("root")
@click.argument("root_file", required=False)
@click.option("--ca-url", "ca_url", metavar="URI", help="The URI of the CA (default: the bootstrapped one).")
@click.option("--fingerprint", metavar="FINGERPRINT",
              help="The SHA-256 fingerprint of the root (default: the bootstrapped one).")
@options.force
def root_cmd(root_file, ca_url, fingerprint, force) -> None:
    """Download the root certificate (checked against --fingerprint or the saved one)."""
    url = config.ca_url(ca_url)
    fp = (fingerprint or config.defaults().get("fingerprint") or "").lower()
    if not fp:
        raise ClientError("missing --fingerprint")
    pem = fetch_root(url, fp.replace(":", "").replace("-", "")).public_bytes(Encoding.PEM)
    if root_file:
        ui.write_files({root_file: pem}, mode=0o644, force=force)
        ui.info(f"The root certificate has been saved in {root_file}.")
    else:
        click.echo(pem.decode(), nl=False)


@ca.command("health")
@options.connection
def health_cmd(ca_url, root) -> None:
    """Check the CA's health."""
    client, _ = connect(ca_url, root)
    click.echo(client.get("/health").get("status", "unknown"))


@ca.command("roots")
@options.connection
def roots_cmd(ca_url, root) -> None:
    """Print the CA's root certificates."""
    client, _ = connect(ca_url, root)
    click.echo(client.get("/roots.pem", raw=True).decode(), nl=False)


@cli.command("path")
@click.option("--base", is_flag=True, help="Print the base path (the same directory: stepless has no contexts).")
def path_cmd(base) -> None:
    """Print where the client keeps its files: $STEPLESS_HOME (default ~/.stepless), like `step path`.

    Under it: config/defaults.json (CA URL, root fingerprint), certs/root_ca.crt and, after `stepless dev`,
    secrets/password (the dev provisioner's password).
    """
    click.echo(str(config.home()))
