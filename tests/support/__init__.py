"""Shared test helpers: an AWS-backed CA in moto, token and CSR factories."""
