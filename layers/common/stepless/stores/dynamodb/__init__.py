"""The AWS backend (the Lambda functions; the AWS-emulated local stack): DynamoDB tables named by the
functions' environment (and S3 for CRL/KRL objects, Secrets Manager for managed certificates' secrets), one
module per concern. Items are marshalled by :mod:`stepless.stores.dynamo`."""

from __future__ import annotations

from stepless.stores.backend import Stores


def stores() -> Stores:
    """Every concern on DynamoDB (and S3 for the CRL/KRL objects)."""
    from stepless.stores.dynamodb.acme import DynamoAcme
    from stepless.stores.dynamodb.authority import DynamoAudit, DynamoAuthority
    from stepless.stores.dynamodb.certificates import DynamoCertificates
    from stepless.stores.dynamodb.hosts import DynamoHosts
    from stepless.stores.dynamodb.managed import DynamoManaged
    from stepless.stores.dynamodb.objects import DynamoObjects
    from stepless.stores.dynamodb.ocsp_responses import DynamoOCSPResponses
    from stepless.stores.dynamodb.revocations import DynamoRevocations
    from stepless.stores.dynamodb.secrets import AWSSecrets
    from stepless.stores.dynamodb.ssh_revoked import DynamoSSHRevoked
    from stepless.stores.dynamodb.tokens import DynamoTokens

    return Stores("dynamodb", tokens=DynamoTokens(), certificates=DynamoCertificates(),
                  revocations=DynamoRevocations(), authority=DynamoAuthority(), audit=DynamoAudit(),
                  managed=DynamoManaged(), objects=DynamoObjects(), secrets=AWSSecrets(), hosts=DynamoHosts(),
                  ssh_revoked=DynamoSSHRevoked(), ocsp=DynamoOCSPResponses(), acme=DynamoAcme())
