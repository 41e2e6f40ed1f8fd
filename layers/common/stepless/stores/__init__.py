"""Persistence: every table and object the CA keeps, one module per concern (an interface and the functions
the services call, with typed records), implemented by a backend chosen once per container
(:mod:`stepless.stores.backend`): DynamoDB (:mod:`stepless.stores.dynamodb`) or SQLite
(:mod:`stepless.stores.sqlite`)."""
