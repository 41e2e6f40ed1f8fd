import sys, collections
from tests.integration.test_sign_race import race, certificate_count, token_count, serialized_dynamodb  # noqa

def test_probe(test_ca):
    sys.setswitchinterval(1e-6)
    try:
        out = []
        msgs = collections.Counter()
        for i in range(15):
            res = race(test_ca)
            out.append((sum(1 for s, _ in res if s == 201), sorted({s for s, _ in res})))
            for s, b in res:
                if s == 500: msgs[b["message"]] += 1
        print(out, certificate_count(), token_count(), msgs)
    finally:
        sys.setswitchinterval(0.005)
