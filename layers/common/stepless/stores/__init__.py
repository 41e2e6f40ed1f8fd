"""DynamoDB persistence: authority configuration, used tokens, certificates, revocations."""
