"""bench/false_alarms.py: the case of a frame, rates with a bootstrap over whole cases, and the
per-organ / per-case breakdown of normal frames called lesions."""
from __future__ import annotations

import pytest

from bench_helpers import bench_module


def _bench():
    return bench_module("false_alarms")


def _row(case: str, organ: str, normal: bool, called_normal: bool, k: int = 0) -> dict:
    return {"frame": f"{case}_v{k}.png", "case": case, "organ": organ, "normal": normal,
            "called_normal": called_normal}


def test_case_of_reads_the_synthetic_naming_and_falls_back_to_the_file() -> None:
    b = _bench()
    assert b.case_of("/d/images/case000123_v2.png") == "case000123"
    assert b.case_of("/d/images/scan_17.png") == "scan_17.png"


def test_case_bootstrap_rate_and_an_interval_that_widens_when_errors_cluster() -> None:
    b = _bench()
    # 40 cases x 3 frames; 6 errors: spread over 6 cases vs all in 2 cases. Same rate (5 %),
    # but clustered errors carry less information: the case bootstrap must give a wider interval.
    spread = [_row(f"c{i}", "Liver", True, not (i < 6 and k == 0), k) for i in range(40) for k in range(3)]
    clustered = [_row(f"c{i}", "Liver", True, i >= 2, k) for i in range(40) for k in range(3)]
    m1, lo1, hi1 = b.case_bootstrap(spread, lambda r: not r["called_normal"])
    m2, lo2, hi2 = b.case_bootstrap(clustered, lambda r: not r["called_normal"])
    assert m1 == pytest.approx(6 / 120) and m2 == pytest.approx(6 / 120)
    assert lo1 <= m1 <= hi1 and lo2 <= m2 <= hi2
    assert (hi2 - lo2) > (hi1 - lo1)


def test_summarise_counts_false_alarms_by_organ_and_case() -> None:
    b = _bench()
    rows = ([_row("c1", "Adnexa", True, False, 0), _row("c1", "Adnexa", True, False, 1),
             _row("c2", "Adnexa", True, True), _row("c3", "Liver", True, True),
             _row("c4", "Liver", False, True), _row("c5", "Liver", False, False)])
    s = b.summarise(rows)
    assert (s["normal_frames"], s["normal_cases"], s["lesion_frames"]) == (4, 3, 2)
    assert s["false_alarms"] == 2 and s["false_alarm_cases"] == 1
    assert s["false_alarms_per_case"] == [2]
    assert s["false_alarm_rate_by_organ"] == {"Adnexa": [2, 3], "Liver": [0, 1]}
    assert s["normal_called_lesion"][0] == pytest.approx(0.5)
    assert s["lesion_called_normal"][0] == pytest.approx(0.5)
    assert s["false_alarm_frames"] == ["c1_v0.png", "c1_v1.png"]


def test_empty_rows_give_null_not_nan_and_the_difference_has_its_own_interval() -> None:
    b = _bench()
    err = lambda r: not r["called_normal"]  # noqa: E731
    assert b.case_bootstrap([], err) == [None, None, None]
    assert b.case_bootstrap_difference([], [_row("c1", "Liver", True, True)], err) == [None, None, None]
    high = [_row(f"t{i}", "Liver", True, i >= 12, k) for i in range(60) for k in range(2)]  # 20 %
    low = [_row(f"v{i}", "Liver", True, i >= 3, k) for i in range(60) for k in range(2)]  # 5 %
    d, lo, hi = b.case_bootstrap_difference(high, low, err)
    assert d == pytest.approx(0.15) and 0 < lo < d < hi
    same, lo2, hi2 = b.case_bootstrap_difference(low, low, err)
    assert same == 0 and lo2 < 0 < hi2
