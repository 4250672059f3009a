"""Bootstrap confidence intervals and paired significance tests: deterministic per seed, right coverage on
known data, a real difference is significant and no difference is not."""

import numpy as np
import pytest

from dicrepro.evaluate.stats import bootstrap_ci, format_ci, paired_test, significance_mark


def test_ci_holds_the_mean_is_seeded_and_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    small, large = rng.uniform(size=30).tolist(), rng.uniform(size=3000).tolist()
    ci = bootstrap_ci(small, seed=5)
    assert ci["low"] < ci["mean"] < ci["high"] and ci["n"] == 30
    assert bootstrap_ci(small, seed=5) == ci and bootstrap_ci(small, seed=6) != ci
    wide, narrow = ci["high"] - ci["low"], bootstrap_ci(large)["high"] - bootstrap_ci(large)["low"]
    assert narrow < wide / 5
    # the CI of a uniform(0,1) mean over 3000 samples holds 0.5 (sd/sqrt(n) ~ 0.005)
    big = bootstrap_ci(large)
    assert big["low"] < 0.5 < big["high"]


def test_nones_are_left_out_and_tiny_inputs_do_not_fail():
    assert bootstrap_ci([None, 1.0, None, 0.0])["mean"] == 0.5
    assert bootstrap_ci([]) == {"mean": None, "low": None, "high": None, "n": 0}
    assert bootstrap_ci([0.7]) == {"mean": 0.7, "low": 0.7, "high": 0.7, "n": 1}


@pytest.mark.parametrize("method", ["randomization", "bootstrap"])
def test_paired_test_finds_a_real_difference_and_not_a_fake_one(method):
    rng = np.random.default_rng(2)
    base = rng.uniform(size=200)
    better = np.clip(base + 0.05 + rng.normal(0, 0.02, 200), 0, 1)
    res = paired_test(better.tolist(), base.tolist(), method=method)
    assert res["diff"] > 0 and res["p"] < 0.01 and res["low"] > 0
    noise = (base + rng.normal(0, 0.05, 200)).tolist()
    assert paired_test(noise, base.tolist(), method=method)["p"] > 0.05
    assert paired_test(base.tolist(), base.tolist(), method=method)["p"] == 1.0
    assert paired_test([1.0, None], [0.0, 1.0], method=method)["n"] == 1
    with pytest.raises(ValueError, match="equal lengths"):
        paired_test([1.0], [1.0, 2.0])


def test_table_helpers():
    assert format_ci({"mean": 0.5234, "low": 0.48, "high": 0.56}) == "52.3 ± 4.0"
    assert format_ci({"mean": None}) == "-"
    assert [significance_mark(p) for p in (0.001, 0.03, 0.2, None)] == ["**", "*", "", ""]
