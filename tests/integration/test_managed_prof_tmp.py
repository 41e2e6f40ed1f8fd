import cProfile, pstats, datetime as dt
from tests.integration.test_managed import managed, issue, run  # noqa
from stepless import clock

def test_prof(managed):
    pr = cProfile.Profile(); pr.enable()
    for i in range(40):
        issue(name=f"p{i}", subject=f"p{i}.example.com", sans=[f"p{i}.example.com"])
    with clock.shift(dt.timedelta(hours=49)):
        run(flush_metrics=False)
    pr.disable()
    pstats.Stats(pr).sort_stats("cumulative").print_stats(35)
