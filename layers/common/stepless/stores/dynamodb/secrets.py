"""Managed certificates' secrets in AWS Secrets Manager (the AWS backend's part of stores.secrets)."""

from __future__ import annotations

from typing import Any

from stepless import aws
from stepless.aws import error_code
from stepless.errors import BadRequest
from stepless.faults import translate_aws_errors


class AWSSecrets:
    def create(self, name: str, value: str, *, description: str, tags: dict[str, str]) -> str:
        sm = aws.client("secretsmanager")
        with translate_aws_errors("Secrets Manager"):
            try:
                return sm.create_secret(Name=name, SecretString=value, Description=description,
                                        Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["ARN"]
            except Exception as e:
                if error_code(e) != "ResourceExistsException":
                    if error_code(e) == "InvalidRequestException":
                        raise BadRequest(f"secret {name}: {e} (restore it or choose another name)") from e
                    raise
            return sm.put_secret_value(SecretId=name, SecretString=value)["ARN"]

    def read(self, arn: str) -> str:
        with translate_aws_errors("Secrets Manager"):
            return aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]

    def write(self, arn: str, value: str, request_token: str) -> str:
        with translate_aws_errors("Secrets Manager"):
            out = aws.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=value,
                                                                ClientRequestToken=request_token)
        return str(out["VersionId"])

    def delete(self, arn: str) -> None:
        """Scheduled deletion (Secrets Manager's default 30-day recovery window)."""
        with translate_aws_errors("Secrets Manager"):
            aws.client("secretsmanager").delete_secret(SecretId=arn)

    def versions(self, arn: str) -> dict[str, list[str]]:
        out: dict[str, Any] = aws.client("secretsmanager").list_secret_version_ids(SecretId=arn)
        return {v["VersionId"]: list(v.get("VersionStages") or []) for v in out.get("Versions", [])}
