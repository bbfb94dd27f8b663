import numpy as np

from aicfg_collector import routing


def test_balanced_routing_loads_every_expert_equally():
    ids = routing.route(16, 8, 2, "balanced")
    assert ids.shape == (16, 2)
    assert np.bincount(ids.ravel(), minlength=8).tolist() == [4] * 8
    assert all(len(set(r)) == 2 for r in ids.tolist())


def test_power_law_is_skewed_deterministic_and_distinct_per_token():
    a = routing.route(4096, 64, 4, "power_law_1.2")
    b = routing.route(4096, 64, 4, "power_law_1.2")
    assert (a == b).all()
    assert all(len(set(r)) == 4 for r in a[:200].tolist())
    c = np.sort(np.bincount(a.ravel(), minlength=64))[::-1]
    u = np.sort(np.bincount(routing.route(4096, 64, 4, "power_law_1.01").ravel(), minlength=64))
    assert c[0] > 4 * c[-1]  # the hottest expert far above the coldest
    assert c.sum() == u.sum() == 4096 * 4


def test_local_load_takes_the_busiest_rank():
    ids = np.array([[0, 1], [0, 2], [0, 3], [5, 4]])
    counts, first = routing.local_load(ids, 8, 2)
    assert first == 0 and counts.tolist() == [3, 1, 1, 1]
    counts, first = routing.local_load(np.array([[6, 7], [6, 1]]), 8, 4)
    assert first == 6 and counts.tolist() == [2, 1]
