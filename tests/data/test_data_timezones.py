"""Time handling: local wall time to UTC across DST changes (property-based) and the DST policies."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxora.data.timezones import AmbiguityTracker, check_zone, localize

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Melbourne"]


def _transition_days(zone: str, year: int) -> list[date]:
    """Local dates in `year` whose length is not 24 h (the DST change days)."""
    tz = ZoneInfo(zone)
    days = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="D", tz=tz)
    lengths = np.diff(days.asi8) // 3_600_000_000_000
    return [d.date() for d, n in zip(days[:-1], lengths, strict=True) if n != 24]


def _local_export(zone: str, day: date, step_min: int, days_around: int) -> tuple[pd.Series, pd.DatetimeIndex]:
    """What a meter export in local wall time looks like around `day`: the true UTC instants and their wall times."""
    tz = ZoneInfo(zone)
    start = pd.Timestamp(day - timedelta(days=days_around), tz=tz)
    end = pd.Timestamp(day + timedelta(days=days_around + 1), tz=tz)
    instants = pd.date_range(start.tz_convert("UTC"), end.tz_convert("UTC"), freq=f"{step_min}min", inclusive="left")
    wall = pd.Series(instants.tz_convert(tz).tz_localize(None))
    return wall, instants


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    year=st.integers(2000, 2035),
    which=st.integers(0, 1),
    step_min=st.sampled_from([15, 30, 60]),
    days_around=st.integers(0, 2),
)
def test_local_export_round_trips_to_utc_without_duplicates_or_holes(
    zone: str, year: int, which: int, step_min: int, days_around: int
) -> None:
    day = _transition_days(zone, year)[which]
    wall, instants = _local_export(zone, day, step_min, days_around)
    utc, issues = localize(wall, pd.Series(["s"] * len(wall)), zone)
    assert issues.isna().all()
    stamps = pd.DatetimeIndex(utc)
    assert stamps.is_unique
    assert (np.diff(stamps.asi8) == step_min * 60 * 1_000_000_000).all()  # no missing instant
    assert stamps.equals(instants)
    # local-day aggregates: the change day has 23 or 25 hours, the others 24
    hours = pd.Series(1, index=stamps.tz_convert(zone)).groupby(lambda t: t.date()).size() * step_min / 60
    tz = ZoneInfo(zone)
    for local_day, n in hours.items():
        midnight = pd.Timestamp(local_day, tz=tz)
        expected = (pd.Timestamp(local_day + timedelta(days=1), tz=tz) - midnight) / pd.Timedelta(hours=1)
        assert n == expected
        assert n in ((23.0, 24.0, 25.0) if local_day == day else (24.0,))


@settings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(ZONES), year=st.integers(2000, 2035), which=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_gappy_exports_never_duplicate_and_naive_grids_quarantine_the_skipped_hour(
    zone: str, year: int, which: int, seed: int
) -> None:
    day = _transition_days(zone, year)[which]
    # an exporter that writes a plain 24-hour local grid, ignoring DST
    grid = pd.Series(pd.date_range(pd.Timestamp(day), periods=24, freq="h"))
    keep = np.random.default_rng(seed).random(len(grid)) > 0.2
    wall = grid[keep].reset_index(drop=True)
    utc, issues = localize(wall, pd.Series(["s"] * len(wall)), zone)
    placed = pd.DatetimeIndex(utc.dropna())
    assert placed.is_unique
    assert len(placed) + int(issues.notna().sum()) == len(wall)  # every row placed or flagged, none lost
    assert utc.isna().equals(issues.notna())
    assert all("nonexistent" in text for text in issues.dropna())


def _berlin_fall_back() -> pd.Series:
    return pd.Series(pd.to_datetime(["2024-10-27 01:00", "2024-10-27 02:00", "2024-10-27 02:00", "2024-10-27 03:00"]))


def test_infer_reads_repeated_hour_in_file_order_per_series() -> None:
    wall = pd.concat([_berlin_fall_back(), _berlin_fall_back()], ignore_index=True)
    ids = pd.Series(["a"] * 4 + ["b"] * 4)
    utc, _ = localize(wall, ids, "Europe/Berlin")
    expected = pd.to_datetime(
        ["2024-10-26 23:00", "2024-10-27 00:00", "2024-10-27 01:00", "2024-10-27 02:00"], utc=True
    )
    assert list(utc[:4]) == list(expected) and list(utc[4:]) == list(expected)


def test_infer_carries_across_batches() -> None:
    tracker = AmbiguityTracker()
    wall = _berlin_fall_back()
    first, _ = localize(wall[:2], pd.Series(["a", "a"]), "Europe/Berlin", tracker=tracker)
    second, _ = localize(wall[2:].reset_index(drop=True), pd.Series(["a", "a"]), "Europe/Berlin", tracker=tracker)
    assert second.iloc[0] - first.iloc[1] == pd.Timedelta(hours=1)


@pytest.mark.parametrize(("policy", "hour_utc"), [("earliest", 0), ("latest", 1)])
def test_earliest_and_latest_pick_one_instant(policy: str, hour_utc: int) -> None:
    utc, issues = localize(pd.Series(pd.to_datetime(["2024-10-27 02:30"])), pd.Series(["a"]), "Europe/Berlin", policy)
    assert utc.iloc[0] == pd.Timestamp(f"2024-10-27 0{hour_utc}:30", tz="UTC") and issues.isna().all()


def test_quarantine_policies_mark_instead_of_guessing() -> None:
    wall = pd.Series(pd.to_datetime(["2024-10-27 02:30", "2024-03-31 02:30"]))
    utc, issues = localize(wall, pd.Series(["a", "a"]), "Europe/Berlin", ambiguous="quarantine")
    assert utc.isna().all()
    assert "ambiguous" in issues[0] and "nonexistent" in issues[1]


def test_shift_forward_moves_the_skipped_hour_to_the_jump() -> None:
    wall = pd.Series(pd.to_datetime(["2024-03-31 02:30"]))
    utc, issues = localize(wall, pd.Series(["a"]), "Europe/Berlin", nonexistent="shift_forward")
    assert utc.iloc[0] == pd.Timestamp("2024-03-31 01:00", tz="UTC") and issues.isna().all()


def test_bad_policy_and_zone_are_refused() -> None:
    with pytest.raises(ValueError, match=r"data\.ambiguous"):
        localize(_berlin_fall_back(), pd.Series(["a"] * 4), "Europe/Berlin", ambiguous="guess")
    with pytest.raises(ValueError, match="unknown time zone"):
        check_zone("Europe/Atlantis")


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_the_stamps_own_unit_gives_the_same_instants(unit: str) -> None:
    """Parquet files often store microseconds; a DST change used to turn such a batch into 1970."""
    wall = pd.Series(pd.DatetimeIndex(_berlin_fall_back()).as_unit(unit))
    utc, _ = localize(wall, pd.Series(["a"] * 4), "Europe/Berlin")
    expected = pd.to_datetime(
        ["2024-10-26 23:00", "2024-10-27 00:00", "2024-10-27 01:00", "2024-10-27 02:00"], utc=True
    )
    assert list(utc) == list(expected)
