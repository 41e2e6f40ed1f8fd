"""Managed certificates: issued by the administrator, kept in one Secrets Manager secret each, and renewed
by the renew function's scheduled (EventBridge) run.

- :mod:`store` — the registry (DynamoDB ``ManagedTable``, key ``name``; sparse GSI ``RenewAt`` on
  (``due``, ``renew_at``) that the scheduled run queries — never a scan).
- :mod:`secret` — the secret ``<prefix>/managed/<name>`` (JSON: certificate, chain, privateKey, serial,
  notAfter); a renewal is a new version (AWSCURRENT), the previous one stays as AWSPREVIOUS.
- :mod:`renewal` — issuing (administrator) and the scheduled pass (claim → issue → secret → finalize).
- :mod:`events` — the ``stepless.CertificateRenewed`` EventBridge event and the metrics (EMF log lines).
"""
