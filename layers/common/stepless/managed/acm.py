"""Managed certificates that also live in ACM — the API's custom domain first: ACM does not renew an imported
certificate, so the renewal run re-imports each renewal into the same ARN (``ImportCertificate`` with
``CertificateArn``: the ARN, and every API Gateway domain or load balancer using it, stay; the certificate
behind it changes).

An import is tagged ``stepless:managed=<name>`` and ``stepless:stack=<stack>``; the renew function may only
re-import certificates tagged with its own stack (template.yaml, ``ReimportManagedAcmCertificates``).
Re-importing the same certificate is harmless, so a renewal retried after a failed import simply imports again.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from stepless import aws
from stepless.errors import BadRequest
from stepless.faults import translate_aws_errors
from stepless.stores import backend

MANAGED_TAG = "stepless:managed"
STACK_TAG = "stepless:stack"


def put(cert: x509.Certificate, intermediate_pem: str, key: PrivateKeyTypes, *, arn: str | None,
        name: str = "", stack: str = "") -> str:
    """Import ``cert`` (new ACM certificate when ``arn`` is None, else re-import into ``arn``); the ARN.

    ``name``/``stack`` tag a new import, or an existing ARN adopted by the administrator (``tag``)."""
    if backend.current().name == "sqlite":
        raise BadRequest("ACM needs AWS: the local CA's SQLite engine cannot import into it")
    kwargs = {
        "Certificate": cert.public_bytes(serialization.Encoding.PEM),
        "PrivateKey": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
        "CertificateChain": intermediate_pem.encode(),
    }
    tags = [{"Key": MANAGED_TAG, "Value": name}, {"Key": STACK_TAG, "Value": stack}] if name else []
    with translate_aws_errors("ACM"):
        acm = aws.client("acm")
        if arn is None:
            return str(acm.import_certificate(**kwargs, **({"Tags": tags} if tags else {}))["CertificateArn"])
        acm.import_certificate(CertificateArn=arn, **kwargs)
        if tags:  # an administrator adopting an ARN imported by hand (docs/deployment.md §6)
            acm.add_tags_to_certificate(CertificateArn=arn, Tags=tags)
    return arn


def serial_of(arn: str) -> int:
    """The serial of the certificate behind ``arn`` (inspection, tests)."""
    pem = aws.client("acm").get_certificate(CertificateArn=arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode()).serial_number
