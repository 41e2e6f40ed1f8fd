"""Lambda entry point for POST /sign and the read-only CA endpoints."""

from stepless.api.sign import app

handler = app.handler
