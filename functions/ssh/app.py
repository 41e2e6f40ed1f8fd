"""Lambda entry point for the /ssh/* routes."""

from stepless.api.ssh import app

handler = app.handler
