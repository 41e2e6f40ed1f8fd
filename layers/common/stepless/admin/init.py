"""``stepless ca init``: root, intermediate, the first JWK provisioner, optional SSH CAs."""

from __future__ import annotations

import dataclasses
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import authority, clock, jose
from stepless.admin import keys
from stepless.claims import Claims
from stepless.errors import ConfigError
from stepless.stores import authority as store
from stepless.x509 import ca


@dataclasses.dataclass(frozen=True)
class InitResult:
    root_pem: str
    intermediate_pem: str
    fingerprint: str
    provisioner: str
    kid: str


def jwk_provisioner(name: str, password: str, *, claims: dict[str, Any] | None = None,
                    p2c: int = jose.STEP_P2C) -> dict[str, Any]:
    """A new JWK provisioner entry: public key + step's encryptedKey of the private key."""
    private = jose.private_jwk(ec.generate_private_key(ec.SECP256R1()))
    entry: dict[str, Any] = {
        "type": "JWK",
        "name": name,
        "key": jose.public_part(private),
        "encryptedKey": jose.encrypt_jwk(private, password, p2c=p2c),
    }
    if claims:
        entry["claims"] = claims
    return entry


def init(*, outputs: dict[str, str], backend: str, name: str, dns_names: list[str], provisioner: str,
         password: str, ssh: bool, force: bool, claims: dict[str, Any] | None = None,
         p2c: int = jose.STEP_P2C) -> InitResult:
    """Create the CA and store its configuration; refuses to replace one without ``force``."""
    if not password:
        raise ConfigError("the provisioner password cannot be empty")
    if store.exists() and not force:
        raise ConfigError("a certificate authority is already initialized here (use --force to replace it)")
    Claims.from_json(claims, None)  # validate
    now = clock.now()
    root_signer = keys.provide("root", backend, outputs, force=force)
    inter_signer = keys.provide("intermediate", backend, outputs, force=force)
    root = ca.root(root_signer, name, now)
    inter = ca.intermediate(inter_signer, root, root_signer, name, now)
    prov = jwk_provisioner(provisioner, password, p2c=p2c)
    doc: dict[str, Any] = {
        "name": name,
        "roots": [root.public_bytes(Encoding.PEM).decode()],
        "intermediate": inter.public_bytes(Encoding.PEM).decode(),
        "intermediateKey": inter_signer.ref,
        "dnsNames": dns_names,
        "claims": claims or {},
        "backdate": "1m",
        "keyBackend": backend,
        "provisioners": [prov],
    }
    if ssh:
        from stepless.ssh import to_authorized_key

        user = keys.provide("ssh-user", backend, outputs, force=force)
        host = keys.provide("ssh-host", backend, outputs, force=force)
        doc["ssh"] = {
            "userKey": user.ref,
            "hostKey": host.ref,
            "userPublicKey": to_authorized_key(user.public_key()),  # type: ignore[arg-type]
            "hostPublicKey": to_authorized_key(host.public_key()),  # type: ignore[arg-type]
        }
        prov["claims"] = {"enableSSHCA": True}
        doc["provisioners"].append({"type": "SSHPOP", "name": "sshpop", "claims": {"enableSSHCA": True}})
    store.overwrite(doc) if force else store.save(doc, expected_version=None)
    authority.reset()
    return InitResult(
        root_pem=doc["roots"][0],
        intermediate_pem=doc["intermediate"],
        fingerprint=authority.fingerprint(root),
        provisioner=provisioner,
        kid=prov["key"]["kid"],
    )
