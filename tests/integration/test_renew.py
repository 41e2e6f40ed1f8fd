"""POST /renew and /rekey through the handler, against moto: mTLS and x5cInsecure tokens, every rule."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepless import authority, clock
from stepless.api import renew as renew_api
from stepless.api import revoke as revoke_api
from stepless.api.sign import app as sign_app
from stepless.services import issuance
from stepless.signers.memory import MemorySigner
from stepless.stores import authority as authority_store
from stepless.stores import certificates
from stepless.x509 import extensions, profile
from stepless.x509.csr import SANs
from tests.support.ca import CA_URL, call, make_csr

renew_app = renew_api.app
revoke_app = revoke_api.app


# ---- helpers (also used by test_revoke and test_crl_ocsp) ----

def issue(test_ca, cn="svc.example.com", sans=None, **body):
    """(certificate, key, PEM) signed through POST /sign."""
    csr, key = make_csr(cn, sans)
    status, out = call(sign_app, "POST", "/1.0/sign", {"csr": csr, "ott": test_ca.token(cn, sans=sans), **body})
    assert status == 201, out
    return x509.load_pem_x509_certificate(out["crt"].encode()), key, out["crt"]


def der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def renew_token(cert, key, *, aud=CA_URL + "/1.0/renew", iss="step-ca-client/1.0", sub=None, lifetime=300,
                chain=None, jti=None, alg="ES256"):
    """A renew token as step's CLI makes it: x5cInsecure header, signed by the leaf's key."""
    now = int(clock.now().timestamp())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    payload = {"iss": iss, "sub": sub if sub is not None else cn, "aud": aud, "iat": now, "nbf": now,
               "exp": now + lifetime, "jti": jti or uuid.uuid4().hex}
    inter = authority.get().intermediate
    header = {"x5cInsecure": chain if chain is not None else [der_b64(cert), der_b64(inter)]}
    return jwt.encode(payload, key, algorithm=alg, headers=header)


def renew_mtls(pem):
    return call(renew_app, "POST", "/renew", client_cert_pem=pem)


def renew_bearer(token):
    return call(renew_app, "POST", "/1.0/renew", headers={"Authorization": f"Bearer {token}"})


def set_claims(name: str, claims: dict) -> None:
    """Merge ``claims`` into provisioner ``name``'s claims in the stored configuration."""
    doc, version = authority_store.load()
    for p in doc["provisioners"]:
        if p["name"] == name:
            p["claims"] = {**(p.get("claims") or {}), **claims}
    authority_store.save(doc, expected_version=version)
    authority.reset()


def custom_leaf(*, eku=(ExtendedKeyUsageOID.SERVER_AUTH,), cn="server.example.com", issuer=None, signer=None,
                record=True, not_before=None, life=dt.timedelta(hours=1), ca=False, serial=None, extension=True):
    """A leaf built directly with a CA signer (ours by default), recorded like an issued one (with the step
    provisioner extension unless ``extension`` is False)."""
    auth = authority.get()
    key = ec.generate_private_key(ec.SECP256R1())
    prov = auth.provisioners.get("admin")
    nb = not_before or clock.now() - dt.timedelta(minutes=1)
    issuer = issuer or auth.intermediate
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(serial or profile.new_serial())
        .not_valid_before(nb)
        .not_valid_after(nb + life)
        .add_extension(profile.key_usage(key.public_key()), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(profile.authority_key_identifier(issuer), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    )
    if extension:
        builder = builder.add_extension(extensions.extension(prov.type_code, prov.name, prov.credential_id),
                                        critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = profile._sign(builder, signer or auth.intermediate_signer)
    if record:
        ts = int(clock.now().timestamp())
        certificates.record_issuance(issuance.record(cert, provisioner="admin", provisioner_type="JWK",
                                                     issued_at=ts), None)
    return cert, key, issuance.pem(cert)


def foreign_ca():
    """A CA with our intermediate's name and key identifier, but another key."""
    ours = authority.get().intermediate
    key = ec.generate_private_key(ec.SECP256R1())
    ski = ours.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = clock.now()
    cert = (
        x509.CertificateBuilder().subject_name(ours.subject).issuer_name(ours.subject)
        .public_key(key.public_key()).serial_number(profile.new_serial())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, MemorySigner(key)


def sans_of(cert):
    return SANs.of(cert).names()


# ---- mTLS ----

def test_renew_over_mtls_keeps_subject_sans_extensions_and_duration(test_ca):
    old, key, pem = issue(test_ca, "svc.example.com", ["svc.example.com", "10.0.0.1"], notAfter="2h")
    status, body = renew_mtls(pem)
    assert status == 201, body
    new = x509.load_pem_x509_certificate(body["crt"].encode())
    assert body["ca"] == test_ca.authority.intermediate_pem
    assert body["certChain"] == [body["crt"], body["ca"]]
    new.verify_directly_issued_by(test_ca.authority.intermediate)
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject
    assert sans_of(new) == sans_of(old) == ["svc.example.com", "10.0.0.1"]
    assert new.public_key() == old.public_key()
    assert new.not_valid_after_utc - new.not_valid_before_utc == old.not_valid_after_utc - old.not_valid_before_utc
    assert abs(new.not_valid_before_utc - (clock.now() - dt.timedelta(minutes=1))) < dt.timedelta(seconds=5)
    assert [e.oid for e in new.extensions] == [e.oid for e in old.extensions]
    for ext in old.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            assert new.extensions.get_extension_for_oid(ext.oid) == ext
    assert extensions.of(new) == (1, "admin", test_ca.kid)


def test_renewal_records_parent_serial(test_ca):
    old, _, pem = issue(test_ca)
    status, body = renew_mtls(pem)
    assert status == 201
    new = x509.load_pem_x509_certificate(body["crt"].encode())
    rec = certificates.get(str(new.serial_number))
    assert rec.parent_serial == str(old.serial_number)
    assert rec.provisioner == "admin" and rec.provisioner_type == "JWK"
    assert rec.subject == "svc.example.com"


def test_renewal_can_itself_be_renewed(test_ca):
    _, _, pem = issue(test_ca)
    status, body = renew_mtls(pem)
    status, body2 = renew_mtls(body["crt"])
    assert status == 201, body2


def test_missing_credentials_is_400(test_ca):
    status, body = call(renew_app, "POST", "/renew")
    assert status == 400 and "missing client certificate" in body["message"]
    status, body = call(renew_app, "POST", "/renew", headers={"Authorization": "Basic abc"})
    assert status == 401


def test_revoked_certificate_is_refused(test_ca):
    cert, _, pem = issue(test_ca)
    token = test_ca.token(str(cert.serial_number), path="/1.0/revoke")
    status, _ = call(revoke_app, "POST", "/revoke", {"serial": str(cert.serial_number), "ott": token})
    assert status == 200
    status, body = renew_mtls(pem)
    assert status == 401 and "certificate has been revoked" in body["message"]


def test_expired_certificate_is_refused(test_ca):
    _, _, pem = issue(test_ca, notAfter="5m")
    with clock.shift(dt.timedelta(minutes=10)):
        status, body = renew_mtls(pem)
    assert status == 401 and "certificate has expired" in body["message"]


def test_not_yet_valid_certificate_is_refused(test_ca):
    _, _, pem = issue(test_ca, notBefore="10m", notAfter="1h")
    status, body = renew_mtls(pem)
    assert status == 401 and "not yet valid" in body["message"]


def test_server_only_certificate_over_mtls_is_refused(test_ca):
    _, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    status, body = renew_mtls(pem)
    assert status == 401 and "client authentication" in body["message"]


def test_client_auth_certificate_built_the_same_way_renews(test_ca):
    _, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), cn="client.example.com")
    status, body = renew_mtls(pem)
    assert status == 201, body


def test_certificate_from_another_ca_is_refused(test_ca):
    other, signer = foreign_ca()
    _, key, pem = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), issuer=other, signer=signer, record=False)
    status, body = renew_mtls(pem)
    assert status == 401 and "not issued by this certificate authority" in body["message"]
    cert = x509.load_pem_x509_certificate(pem.encode())
    status, body = renew_bearer(renew_token(cert, key))
    assert status == 401 and "not issued by this certificate authority" in body["message"]


def test_unrecorded_certificate_is_refused(test_ca):
    _, _, pem = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), record=False)
    status, body = renew_mtls(pem)
    assert status == 401 and "unknown" in body["message"]


def test_disable_renewal_is_refused(test_ca):
    _, key, pem = issue(test_ca)
    set_claims("admin", {"disableRenewal": True})
    status, body = renew_mtls(pem)
    assert status == 401 and "renew is disabled for provisioner 'admin'" in body["message"]
    cert = x509.load_pem_x509_certificate(pem.encode())
    status, body = renew_bearer(renew_token(cert, key))
    assert status == 401 and "renew is disabled" in body["message"]


def test_revoke_racing_renew_loses_for_the_renewal(test_ca, monkeypatch):
    """A renewal signed before the revocation landed cannot be recorded after it: the revocation is a
    condition of the recording transaction (there is no read before it any more), and the signed
    certificate is dropped."""
    cert, _, pem = issue(test_ca)
    serial = str(cert.serial_number)
    token = test_ca.token(serial, path="/1.0/revoke")
    real = certificates.record_renewal

    def revoked_meanwhile(*args, **kwargs):  # the revocation lands between signing and recording
        assert call(revoke_app, "POST", "/revoke", {"serial": serial, "ott": token})[0] == 200
        return real(*args, **kwargs)

    monkeypatch.setattr(certificates, "record_renewal", revoked_meanwhile)
    status, body = renew_mtls(pem)
    assert status == 401 and "revoked" in body["message"]
    assert "crt" not in body and certificates.children(serial) == []


# ---- token ----

def test_renew_by_token(test_ca):
    old, key, _ = issue(test_ca, "tok.example.com", notAfter="1h")
    status, body = renew_bearer(renew_token(old, key))
    assert status == 201, body
    new = x509.load_pem_x509_certificate(body["crt"].encode())
    assert new.subject == old.subject and sans_of(new) == sans_of(old)
    assert new.not_valid_after_utc - new.not_valid_before_utc == dt.timedelta(minutes=61)
    assert certificates.get(str(new.serial_number)).parent_serial == str(old.serial_number)


def test_token_with_provisioner_name_as_issuer(test_ca):
    old, key, _ = issue(test_ca)
    assert renew_bearer(renew_token(old, key, iss="admin"))[0] == 201


def test_replayed_renew_token_is_refused(test_ca):
    old, key, _ = issue(test_ca)
    token = renew_token(old, key)
    assert renew_bearer(token)[0] == 201
    status, body = renew_bearer(token)
    assert status == 401 and "token already used" in body["message"]


@pytest.mark.parametrize(("kw", "reason"), [
    ({"aud": "https://evil.example.com/1.0/renew"}, "invalid audience"),
    ({"aud": CA_URL + "/1.0/sign"}, "invalid audience"),
    ({"iss": "someone"}, "invalid issuer"),
    ({"sub": "other.example.com"}, "invalid subject"),
    ({"lifetime": -600}, "token expired"),
    ({"chain": []}, "missing x5cInsecure"),
    ({"chain": ["!!!"]}, "invalid certificate"),
])
def test_bad_renew_tokens_are_refused(test_ca, kw, reason):
    old, key, _ = issue(test_ca)
    status, body = renew_bearer(renew_token(old, key, **kw))
    assert status == 401, body
    assert reason in body["message"]


def test_token_signed_by_another_key_is_refused(test_ca):
    old, _, _ = issue(test_ca)
    status, body = renew_bearer(renew_token(old, ec.generate_private_key(ec.SECP256R1())))
    assert status == 401 and "signature" in body["message"]


def test_hmac_token_is_refused(test_ca):
    old, _, _ = issue(test_ca)
    status, body = renew_bearer(renew_token(old, "secret-secret-secret-secret-secret", alg="HS256"))
    assert status == 401 and "algorithm" in body["message"]


def test_expired_certificate_by_token_is_refused_by_default(test_ca):
    old, key, _ = issue(test_ca, notAfter="5m")
    with clock.shift(dt.timedelta(minutes=10)):
        status, body = renew_bearer(renew_token(old, key))
    assert status == 401 and "certificate has expired" in body["message"]


def test_allow_renewal_after_expiry_by_token(test_ca):
    old, key, pem = issue(test_ca, notAfter="5m")
    set_claims("admin", {"allowRenewalAfterExpiry": True})
    with clock.shift(dt.timedelta(minutes=30)):
        status, body = renew_bearer(renew_token(old, key))
        assert status == 201, body
        new = x509.load_pem_x509_certificate(body["crt"].encode())
        assert new.not_valid_after_utc > clock.now()
        assert new.not_valid_after_utc - new.not_valid_before_utc == dt.timedelta(minutes=6)
        # never over mTLS
        status, body = renew_mtls(pem)
        assert status == 401 and "expired" in body["message"]


# ---- rekey ----

def test_rekey_over_mtls(test_ca):
    old, _, pem = issue(test_ca, "rk.example.com", notAfter="3h")
    csr, new_key = make_csr("ignored.example.com", ["ignored.example.com"])
    status, body = call(renew_app, "POST", "/1.0/rekey", {"csr": csr}, client_cert_pem=pem)
    assert status == 201, body
    new = x509.load_pem_x509_certificate(body["crt"].encode())
    assert new.public_key() == new_key.public_key()
    assert new.subject == old.subject and sans_of(new) == sans_of(old)
    ski = new.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(new_key.public_key())
    assert new.not_valid_after_utc - new.not_valid_before_utc == dt.timedelta(hours=3, minutes=1)
    assert certificates.get(str(new.serial_number)).parent_serial == str(old.serial_number)


def test_rekey_needs_mtls_and_a_valid_csr(test_ca):
    _, _, pem = issue(test_ca)
    csr, _ = make_csr("a.example.com")
    assert call(renew_app, "POST", "/rekey", {"csr": csr})[0] == 400
    status, body = call(renew_app, "POST", "/rekey", {"csr": "nope"}, client_cert_pem=pem)
    assert status == 400 and "csr" in body["message"]


def test_garbage_client_certificate_is_400(test_ca):
    assert renew_mtls("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")[0] == 400


def test_handler_module(test_ca):
    from functions.renew import app as fn

    assert fn.handler is renew_app.handler or fn.handler.__self__ is renew_app


def test_a_ca_certificate_of_ours_does_not_renew(test_ca):
    """A CA certificate signed by our intermediate is refused over mTLS and with a renew token."""
    cert, key, pem = custom_leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), cn="subca.example.com", ca=True)
    status, body = renew_mtls(pem)
    assert status == 401 and "CA certificate" in body["message"]
    status, body = renew_bearer(renew_token(cert, key))
    assert status == 401 and "CA certificate" in body["message"] and "crt" not in body
