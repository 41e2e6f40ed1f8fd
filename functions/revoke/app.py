"""Lambda entry point for POST /revoke, GET /crl, OCSP and the scheduled CRL refresh."""

from stepless.api.revoke import app

handler = app.handler
