"""``stepless ssh …``: certificates, inspect, config, renew (SSHPOP), revoke."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from pathlib import Path

import click
import jwt
from cryptography.hazmat.primitives import serialization

from stepless import jose
from stepless.cli import config, keys, options, sshagent, tokens, ui
from stepless.cli.ca import connect
from stepless.cli.main import ssh
from stepless.errors import ClientError
from stepless.provisioners.jwk import email_principals
from stepless.ssh import parse_certificate, parse_public_key, to_authorized_key
from stepless.ssh.certificate import SSHCertificate


def _ssh_private_pem(key: object, password: str | None) -> bytes:
    enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, enc)  # type: ignore[attr-defined]


def _load_ssh_private(path: str, password_file: str | None = None) -> object:
    """An SSH private key in OpenSSH or PEM format (asks the password when encrypted)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ClientError(f"error reading {path}: {e.strerror}") from e
    if b"OPENSSH PRIVATE KEY" not in data:
        return keys.load_private_key(path, password_file, flag="--password-file")
    try:
        return serialization.load_ssh_private_key(data, None)
    except (TypeError, ValueError):
        password = ui.password(password_file, f"Please enter the password to decrypt {path}: ", flag="--password-file")
        try:
            return serialization.load_ssh_private_key(data, password.encode())
        except ValueError as e:
            raise ClientError(f"error decrypting {path}: wrong password?") from e


def _cert_response(res: dict) -> SSHCertificate:
    try:
        return parse_certificate(base64.b64decode(res["crt"]))
    except (KeyError, ValueError) as e:
        raise ClientError("the CA returned an invalid SSH certificate") from e


@ssh.command("certificate")
@click.argument("key_id")
@click.argument("key_file")
@options.connection
@click.option("--host", is_flag=True, help="Create a host certificate instead of a user certificate.")
@click.option("--sign", is_flag=True, help="Sign the existing public key in KEY_FILE instead of creating a key.")
@click.option("--principal", "-n", multiple=True, help="A principal (user or host name) of the certificate.")
@options.not_before
@options.not_after
@click.option("--no-agent", is_flag=True, help="Do not add the certificate and key to the ssh-agent.")
@click.option("--no-password", is_flag=True, help="Do not ask for a password to encrypt the private key.")
@click.option("--insecure", is_flag=True, help="Allow insecure choices such as --no-password.")
@click.option("--password-file", "key_password_file", metavar="FILE", help="The password to encrypt the key.")
@options.token
@options.provisioner
@click.option("--provisioner-password-file", "password_file", metavar="FILE",
              help="The path to the FILE containing the password to decrypt the one-time token generating key.")
@options.key_flags
@options.force
@options.x5c
def certificate_cmd(key_id, key_file, ca_url, root, host, sign, principal, not_before, not_after, no_agent,
                    no_password, insecure, key_password_file, token, provisioner, password_file, kty, crv, size,
                    force, x5c_cert, x5c_key, console) -> None:
    """Generate an SSH key pair (or use KEY_FILE's public key with --sign) and get a certificate for it."""
    if no_password and not insecure:
        raise ClientError("flag '--no-password' requires the '--insecure' flag")
    base = key_file[:-4] if sign and key_file.endswith(".pub") else key_file
    cert_file = f"{base}-cert.pub"
    private = None
    if sign:
        try:
            public = parse_public_key(Path(key_file).read_text())
        except OSError as e:
            raise ClientError(f"error reading {key_file}: {e.strerror}") from e
        targets = [cert_file]
    else:
        targets = [key_file, f"{key_file}.pub", cert_file]
    for f in targets:
        ui.confirm_overwrite(f, force)
    client, root_file = connect(ca_url, root)
    cert_type = "host" if host else "user"
    principals = list(principal) or (email_principals(key_id) if not host else [key_id])
    if not token:
        opts = {"certType": cert_type, "keyID": key_id, "principals": principals,
                "validAfter": not_before, "validBefore": not_after}
        token = tokens.generate(client, root_file, tokens.TokenRequest("ssh", key_id, extra={"step": {"ssh": opts}}),
                                tokens.Credentials(provisioner, password_file, x5c_cert, x5c_key, console))
    if not sign:
        private = keys.generate_key(kty, crv if crv or kty != "EC" else "P-256", size)
        public = private.public_key()  # type: ignore[assignment]
    password = None
    if private is not None and not no_password:
        password = ui.password(key_password_file, "Please enter the password to encrypt the private key: ",
                               confirm=True, flag="--password-file")
    ui.done("CA", client.ca_url)
    res = client.post("/ssh/sign", {
        "publicKey": base64.b64encode(_wire(public)).decode(), "ott": token, "certType": cert_type,
        "keyID": key_id, "principals": principals, "validAfter": not_before, "validBefore": not_after,
    })
    cert = _cert_response(res)
    files: dict[str, bytes] = {cert_file: (f"{cert.key_type} {res['crt']} {key_id}\n").encode()}
    if private is not None:
        files[key_file] = _ssh_private_pem(private, password)
        files[f"{key_file}.pub"] = (to_authorized_key(public, key_id) + "\n").encode()  # type: ignore[arg-type]
    ui.write_files(files, force=True)
    for f in targets:
        os.chmod(f, 0o600 if f == key_file else 0o644)
    if private is not None:
        ui.done("Private Key", key_file)
        ui.done("Public Key", f"{key_file}.pub")
    ui.done("Certificate", cert_file)
    if private is not None and not host and not no_agent and sshagent.available():
        try:
            sshagent.add_certificate(private, cert, key_id, lifetime=max(60, cert.valid_before - int(time.time())))
            ui.done("SSH Agent", "yes")
        except (OSError, ValueError) as e:
            ui.info(f"SSH Agent: no ({e})")


def _wire(public: object) -> bytes:
    from stepless.ssh import encode_public_key

    return encode_public_key(public)  # type: ignore[arg-type]


def _fmt_time(value: int) -> str:
    if value >= 2**64 - 1:
        return "forever"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def inspect_text(cert: SSHCertificate, name: str) -> str:
    """ssh-keygen -L's layout."""
    from stepless.ssh import fingerprint

    kind = "user" if cert.cert_type == 1 else "host"
    algo = cert.key_type.split("-cert-")[0]
    ca_algo = parse_ssh_algo(cert.signature_key)
    lines = [
        f"{name}:",
        f"        Type: {cert.key_type} {kind} certificate",
        f"        Public key: {key_label(algo)}-CERT {fingerprint(cert.public_key)}",
        f"        Signing CA: {ca_algo} {fingerprint(cert.signature_key)} (using {cert.signature_algorithm})",
        f'        Key ID: "{cert.key_id}"',
        f"        Serial: {cert.serial}",
        f"        Valid: from {_fmt_time(cert.valid_after)} to {_fmt_time(cert.valid_before)}",
        "        Principals: " + ("(none)" if not cert.principals else ""),
        *(f"                {p}" for p in cert.principals),
        "        Critical Options: " + ("(none)" if not cert.critical_options else ""),
        *(f"                {k}" for k in sorted(cert.critical_options)),
        "        Extensions: " + ("(none)" if not cert.extensions else ""),
        *(f"                {k}" for k in sorted(cert.extensions)),
    ]
    return "\n".join(lines)


def key_label(algo: str) -> str:
    return {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA"}.get(algo, "ECDSA" if algo.startswith("ecdsa") else algo)


def parse_ssh_algo(key: object) -> str:
    from stepless.ssh import key_type

    return key_label(key_type(key))  # type: ignore[arg-type]


@ssh.command("inspect")
@click.argument("cert_file", required=False, default="-")
def inspect_cmd(cert_file) -> None:
    """Print the contents of an SSH certificate (FILE, or - for stdin)."""
    data = keys.read_input(cert_file)
    try:
        cert = parse_certificate(data.decode().strip())
    except (ValueError, UnicodeDecodeError) as e:
        raise ClientError(f"{cert_file} is not an SSH certificate: {e}") from e
    click.echo(inspect_text(cert, cert_file))


@ssh.command("config")
@options.connection
@click.option("--roots", is_flag=True, help="Print the CA public keys (user CA; host CA with --host).")
@click.option("--federation", is_flag=True, help="Print the federated CA public keys.")
@click.option("--host", is_flag=True, help="Host configuration (or the host CA key with --roots).")
@click.option("--dry-run", is_flag=True, help="Print the files instead of writing them.")
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Template data (e.g. Certificate=…).")
def config_cmd(ca_url, root, roots, federation, host, dry_run, set_) -> None:
    """Print the SSH CA keys, or write the client/host configuration the CA recommends."""
    client, _ = connect(ca_url, root)
    if roots or federation:
        res = client.get("/ssh/federation" if federation else "/ssh/roots")
        for b64 in res.get("hostKey" if host else "userKey") or []:
            click.echo(to_authorized_key(parse_public_key(b64)))
        return
    data = {}
    for item in set_:
        k, sep, v = item.partition("=")
        if not sep:
            raise ClientError(f"invalid --set {item!r}: use KEY=VALUE")
        data[k] = v
    kind = "host" if host else "user"
    home = config.home()
    data = {"GOOS": "linux", "StepPath": str(home), "StepSSHTemplateVersion": "v2", **data}
    res = client.post("/ssh/config", {"type": kind, "data": data})
    for tpl in res.get("hostTemplates" if host else "userTemplates") or []:
        content = base64.b64decode(tpl.get("content") or "").decode()
        path = template_path(str(tpl.get("path") or tpl.get("name") or ""), home)
        if dry_run:
            click.echo(f"{tpl.get('name') or path}:\n{content}")
            continue
        write_template(path, str(tpl.get("type") or "file"), content)
        ui.done(str(tpl.get("name") or "file"), str(path))


MARK_BEGIN = "# autogenerated by stepless"
MARK_END = "# end stepless"


def template_path(raw: str, home: Path) -> Path:
    """Where a template goes: ``${STEPPATH}`` and ``~`` expanded; relative paths under the home."""
    path = Path(os.path.expanduser(raw.replace("${STEPPATH}", str(home))))
    return path if path.is_absolute() else home / path


def write_template(path: Path, kind: str, content: str) -> None:
    """Write like step: ``file`` replaces, ``prepend-line`` adds a missing line first, ``snippet`` keeps the
    rest of the file and replaces (or prepends) only our marked block."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if kind == "directory":
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return
    old = path.read_text() if path.exists() else ""
    if kind == "file":
        new = content
    elif kind == "prepend-line":
        line = content.strip("\n")
        new = old if line in old.splitlines() else f"{line}\n{old}"
    else:
        block = f"{MARK_BEGIN}\n{content.rstrip()}\n{MARK_END}\n"
        if MARK_BEGIN in old and MARK_END in old:
            head, _, rest = old.partition(MARK_BEGIN)
            _, _, tail = rest.partition(MARK_END + "\n")
            new = head + block + tail
        else:
            new = block + ("\n" + old if old else "")
    ui.write_files({path: new.encode()}, mode=0o600, force=True)


def sshpop_token(ca_url: str, path: str, cert: SSHCertificate, cert_b64: str, key: object, sub: str) -> str:
    """An SSHPOP token: the certificate in the header, signed by its own key (as step makes it)."""
    jwk = jose.public_jwk(key)
    now = int(time.time())
    claims = {"iss": "sshpop", "aud": f"{ca_url}{path}#sshpop/sshpop", "sub": sub, "iat": now, "nbf": now,
              "exp": now + tokens.VALIDITY, "jti": os.urandom(32).hex()}
    return jwt.encode(claims, key, algorithm=jose.default_alg(jwk),  # type: ignore[arg-type]
                      headers={"kid": jose.thumbprint(jwk), "sshpop": cert_b64})


def _read_cert(cert_file: str) -> tuple[SSHCertificate, str]:
    try:
        line = Path(cert_file).read_text().split()
    except OSError as e:
        raise ClientError(f"error reading {cert_file}: {e.strerror}") from e
    b64 = line[1] if len(line) > 1 else (line[0] if line else "")
    try:
        return parse_certificate(base64.b64decode(b64)), b64
    except ValueError as e:
        raise ClientError(f"{cert_file} is not an SSH certificate") from e


@ssh.command("renew")
@click.argument("cert_file")
@click.argument("key_file")
@options.connection
@click.option("--out", "--output-file", "out", metavar="FILE", help="Write the new certificate to FILE.")
@click.option("--password-file", metavar="FILE", help="The password of an encrypted KEY_FILE.")
@options.force
def renew_cmd(cert_file, key_file, ca_url, root, out, password_file, force) -> None:
    """Renew an SSH host certificate, authenticated by the host key (SSHPOP)."""
    out = out or cert_file
    ui.confirm_overwrite(out, force)
    cert, b64 = _read_cert(cert_file)
    key = _load_ssh_private(key_file, password_file)
    client, _ = connect(ca_url, root)
    token = sshpop_token(client.ca_url, "/1.0/ssh/renew", cert, b64, key, str(cert.serial))
    res = client.post("/ssh/renew", {"ott": token})
    new = _cert_response(res)
    ui.write_files({out: f"{new.key_type} {res['crt']}\n".encode()}, mode=0o644, force=True)
    ui.info(f"Your certificate has been saved in {out}.")


@ssh.command("revoke")
@click.argument("serial")
@options.connection
@options.token
@options.provisioner
@click.option("--provisioner-password-file", "password_file", metavar="FILE",
              help="The path to the FILE containing the password to decrypt the one-time token generating key.")
@click.option("--sshpop-cert", metavar="FILE", help="Authenticate with this SSH certificate (SSHPOP).")
@click.option("--sshpop-key", metavar="FILE", help="The private key of --sshpop-cert.")
@click.option("--reason", default="", help="The reason for the revocation.")
@click.option("--reasonCode", "--reason-code", "reason_code", type=int, default=0, help="RFC 5280 reason code.")
def revoke_cmd(serial, ca_url, root, token, provisioner, password_file, sshpop_cert, sshpop_key, reason,
               reason_code) -> None:
    """Revoke the SSH certificate with SERIAL: it can no longer be renewed and it is in the KRL."""
    if not (serial.isascii() and serial.isdigit()):
        raise ClientError(f"invalid serial number {serial!r}: use the decimal serial")
    client, root_file = connect(ca_url, root)
    if not token and sshpop_cert:
        if not sshpop_key:
            raise ClientError("flag --sshpop-cert requires --sshpop-key")
        cert, b64 = _read_cert(sshpop_cert)
        token = sshpop_token(client.ca_url, "/1.0/ssh/revoke", cert, b64, _load_ssh_private(sshpop_key), serial)
    if not token:
        token = tokens.generate(client, root_file, tokens.TokenRequest("ssh-revoke", serial),
                                tokens.Credentials(provisioner, password_file))
    client.post("/ssh/revoke", {"serial": serial, "ott": token, "reasonCode": reason_code, "reason": reason,
                                "passive": True})
    click.echo(f"SSH Certificate with Serial Number {serial} has been revoked.")


@ssh.command("krl")
@options.connection
@click.argument("out_file")
def krl_cmd(ca_url, root, out_file) -> None:
    """Download the CA's key revocation list (for sshd's RevokedKeys)."""
    client, _ = connect(ca_url, root)
    ui.write_files({out_file: client.get("/ssh/krl", raw=True)}, mode=0o644, force=True)
    ui.done("KRL", out_file)

