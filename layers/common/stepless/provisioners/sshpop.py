"""SSHPOP provisioner: tokens signed by the key of an SSH certificate our SSH CA issued.

The token (step's format) carries the certificate in its protected header (``"sshpop"``: standard base64
of the certificate's wire blob), is signed by the certificate's private key (``kid``, when present, is
the JWK thumbprint of that key), and has ``iss`` = the provisioner's name and ``aud`` =
``<ca>/1.0/ssh/renew|rekey|revoke`` (optionally ``#sshpop/<name>``).

The certificate must verify against one of our CA keys (host keys for host certificates, user keys for
user certificates); renew and rekey accept host certificates only. Revocation state is the service's
business (it owns the stores), not this module's.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from stepless import jose, tokens
from stepless.errors import BadRequest, StepError, Unauthorized
from stepless.provisioners.base import Context, Provisioner, TokenUse

if TYPE_CHECKING:  # stepless.ssh is imported by the SSHPOP token paths (the sign function never needs it)
    from stepless.ssh import SSHCertificate
    from stepless.ssh.keys import SSHPublicKey

RENEW_PATH = "/1.0/ssh/renew"
REKEY_PATH = "/1.0/ssh/rekey"
REVOKE_PATH = "/1.0/ssh/revoke"
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_RSA_ALGS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


@dataclasses.dataclass(frozen=True)
class CAKeys:
    """The SSH CA public keys a certificate may be signed by."""

    user: tuple[SSHPublicKey, ...] = ()
    host: tuple[SSHPublicKey, ...] = ()

    @classmethod
    def of(cls, user: Sequence[SSHPublicKey], host: Sequence[SSHPublicKey]) -> CAKeys:
        return cls(tuple(user), tuple(host))


@dataclasses.dataclass(frozen=True)
class SSHPOPAuthorization:
    """A verified SSHPOP token: the certificate it proves possession of, and the token's single use."""

    provisioner: SSHPOPProvisioner
    certificate: SSHCertificate
    subject: str
    token: TokenUse


def token_algorithms(key: SSHPublicKey) -> set[str]:
    """The JWS algorithms a token signed by ``key`` may use."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"EdDSA"}
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGS.get(key.curve.name)
        return {alg} if alg else set()
    if isinstance(key, rsa.RSAPublicKey):
        return set(_RSA_ALGS)
    return set()


def certificate_from_header(header: dict[str, Any]) -> SSHCertificate:
    """The SSH certificate in a token's ``sshpop`` header (401 when missing or malformed)."""
    from stepless.ssh import parse_certificate

    value = header.get("sshpop")
    if not isinstance(value, str) or not value:
        raise Unauthorized("token is missing the sshpop header", reason="invalid_sshpop_token")
    try:
        blob = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise Unauthorized("error base64 decoding the sshpop header", reason="invalid_sshpop_token") from e
    try:
        return parse_certificate(blob)
    except StepError as e:
        raise Unauthorized(f"error parsing the sshpop certificate: {e.detail}", reason="invalid_sshpop_token") from e


def signed_by(cert: SSHCertificate, ca_keys: Sequence[SSHPublicKey]) -> bool:
    """True when ``cert`` carries one of ``ca_keys`` as its signature key and the signature verifies."""
    from stepless.ssh import encode_public_key, verify_signature

    try:
        embedded = encode_public_key(cert.signature_key)
    except StepError:
        return False
    for key in ca_keys:
        if encode_public_key(key) == embedded:
            return verify_signature(cert)
    return False


class SSHPOPProvisioner(Provisioner):
    """step-ca's SSHPOP provisioner (renew and rekey of SSH host certificates, revoke of any)."""

    type = "SSHPOP"

    @property
    def id(self) -> str:
        return f"sshpop/{self.name}"

    def _authorize(self, token: str, header: dict, ctx: Context, path: str, ca_keys: CAKeys, *,
                   check_validity: bool) -> SSHPOPAuthorization:
        from stepless.ssh import FOREVER

        cert = certificate_from_header(header)
        if check_validity:
            now = int(ctx.now.timestamp())
            if now < cert.valid_after:
                raise Unauthorized("sshpop certificate validAfter is in the future", reason="invalid_sshpop_token")
            if cert.valid_before != FOREVER and now >= cert.valid_before:
                raise Unauthorized("sshpop certificate validBefore is in the past", reason="invalid_sshpop_token")
        keys = ca_keys.user if cert.is_user else ca_keys.host
        if not signed_by(cert, keys):
            raise Unauthorized("could not find valid ca signer to verify sshpop certificate",
                               reason="invalid_sshpop_token")
        alg = tokens.check_algorithm(header, token_algorithms(cert.public_key))
        kid = header.get("kid")
        if kid not in (None, "") and kid != jose.thumbprint(jose.public_jwk(cert.public_key)):
            raise Unauthorized("token kid is not the thumbprint of the sshpop certificate key", reason="invalid_key_id")
        claims = tokens.verify_signature(token, cert.public_key, alg)
        tokens.check_common(claims, ctx.audience(path), self.name, self.fragments(), need_jti=False)
        use = TokenUse(tokens.token_id(self.name, claims, token), int(claims["exp"]))
        return SSHPOPAuthorization(self, cert, str(claims["sub"]), use)

    def authorize_ssh_renew(self, token: str, header: dict, ctx: Context, ca_keys: CAKeys) -> SSHPOPAuthorization:
        """A renew token: a host certificate, currently valid (or expired when the claims allow it)."""
        from stepless.ssh import FOREVER

        authz = self._authorize(token, header, ctx, RENEW_PATH, ca_keys, check_validity=False)
        cert = authz.certificate
        if not cert.is_host:
            raise Unauthorized("sshpop certificate must be a host ssh certificate", reason="invalid_sshpop_token")
        if self.claims.disable_renewal:
            raise Unauthorized(f"renew is disabled for provisioner '{self.name}'", reason="renewal_disabled")
        now = int(ctx.now.timestamp())
        if now < cert.valid_after:
            raise Unauthorized("certificate is not yet valid", reason="certificate_not_yet_valid")
        if cert.valid_before != FOREVER and now >= cert.valid_before and not self.claims.allow_renewal_after_expiry:
            raise Unauthorized("certificate has expired", reason="certificate_expired")
        return authz

    def authorize_ssh_rekey(self, token: str, header: dict, ctx: Context, ca_keys: CAKeys) -> SSHPOPAuthorization:
        """A rekey token: a host certificate, currently valid."""
        authz = self._authorize(token, header, ctx, REKEY_PATH, ca_keys, check_validity=True)
        if not authz.certificate.is_host:
            raise Unauthorized("sshpop certificate must be a host ssh certificate", reason="invalid_sshpop_token")
        return authz

    def authorize_ssh_revoke(self, token: str, header: dict, ctx: Context, ca_keys: CAKeys) -> SSHPOPAuthorization:
        """A revoke token: a currently valid certificate (user or host) whose serial is the subject."""
        authz = self._authorize(token, header, ctx, REVOKE_PATH, ca_keys, check_validity=True)
        if authz.subject != str(authz.certificate.serial):
            raise BadRequest("sshpop token subject must be equivalent to sshpop certificate serial number",
                             reason="invalid_serial")
        return authz
