"""stepless: a step-ca compatible certificate authority for AWS Lambda."""

__version__ = "0.1.0"
