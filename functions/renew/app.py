"""Lambda entry point for POST /renew and /rekey."""

from stepless.api.renew import app

handler = app.handler
