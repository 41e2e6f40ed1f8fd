"""Use cases: what each endpoint does, independent of HTTP."""
