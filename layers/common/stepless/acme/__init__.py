"""ACME (RFC 8555) for certbot, lego, Caddy: typed wire messages (:mod:`messages`), RFC 8555 problem documents
(:mod:`errors`), JWS request verification (:mod:`jws`), External Account Binding (:mod:`eab`), identifier
policy (:mod:`policy`), challenge validation (:mod:`validation`) and the use cases (:mod:`service`). The
HTTP routing is :mod:`stepless.api.acme`; the state lives behind :mod:`stepless.stores.acme`."""
