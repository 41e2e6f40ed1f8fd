"""The ``stepless`` command line (client side and administration)."""
