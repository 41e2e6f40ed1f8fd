"""X.509: CSR checks, validity windows, certificate profiles."""
