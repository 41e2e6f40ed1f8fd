"""stepless benchmarks: ``python -m bench`` runs them all, ``python -m bench sign`` one.

Every figure is a ratio against a baseline measured in the same run (absolute numbers are notes only);
these are measurements, not timed tests: nothing here fails a build.
"""

BENCHMARKS = ("real", "sign", "managed", "renew", "ssh", "provisioners", "reads", "devload", "acme")
