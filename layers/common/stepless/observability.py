"""Logging (Powertools JSON logger) shared by every function. Never log tokens, keys or passwords."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "stepless"))
