"""`ca init`: refuses to replace a CA without --force; with --force a new root, and (Secrets backend) a new
key version that warm functions pick up with the configuration."""

from __future__ import annotations

import pytest
from cryptography import x509

from stepless import authority
from stepless.admin.init import init
from stepless.api.sign import app
from stepless.errors import ConfigError
from tests.support.ca import call, make_csr


def _init(outputs, *, force, backend="secrets"):
    return init(outputs=outputs, backend=backend, name="Test", dns_names=["localhost"], provisioner="admin",
                password="pw", ssh=False, force=force, p2c=1000)


def test_refuses_to_replace_without_force(secrets_ca, aws_env):
    with pytest.raises(ConfigError, match="already initialized"):
        _init(aws_env, force=False)


def test_force_replaces_root_and_key_version(secrets_ca, aws_env):
    before = authority.get()
    old_ref, old_root = before.doc["intermediateKey"], before.root_pems[0]
    assert "#" in old_ref  # ARN#VersionId
    result = _init(aws_env, force=True)
    after = authority.get()
    assert after.doc["intermediateKey"] != old_ref
    assert after.doc["intermediateKey"].split("#")[0] == old_ref.split("#")[0]  # same secret, new version
    assert result.root_pem != old_root
    # the reference names the new version, so a signer cached under the old reference is never used for it
    from stepless import jose
    from tests.support.ca import TestCA

    entry = after.provisioners.get("admin")
    ca = TestCA(result, jose.key_from_jwk(jose.decrypt_jwk(entry.data["encryptedKey"], "pw")), result.kid)
    csr, _ = make_csr("a.example.com")
    status, body = call(app, "POST", "/sign", {"csr": csr, "ott": ca.token("a.example.com")})
    assert status == 201, body
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(after.intermediate_pem.encode()))
