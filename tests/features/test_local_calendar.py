"""The local calendar by default: features.timezone follows data.timezone, DST days have 23 and
25 local hours, bridge days and holiday lag days are flagged, a file source without holidays warns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fluxora.config import compose
from fluxora.features.calendar import holiday_warning
from fluxora.features.design import Calendar, design_matrix
from fluxora.features.names import FEATURE_NAMES, FEATURE_NAMES_V1

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _design(origin: str, calendar: Calendar, horizon: int = 24, features: tuple[str, ...] = FEATURE_NAMES):  # type: ignore[no-untyped-def]
    stamps = pd.DatetimeIndex([origin], tz="UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
    load, temp = np.ones((1, 168)), np.full((1, 24), 10.0)
    return design_matrix(load, temp, stamps, horizon, 15.0, 22.0, calendar=calendar, features=features)


def test_features_timezone_follows_data_timezone_unless_set() -> None:
    assert compose(["data=csv", "data.timezone=Europe/Paris"]).features.timezone == "Europe/Paris"
    assert compose(["data=parquet", "data.timezone=Asia/Tokyo"]).features.timezone == "Asia/Tokyo"
    explicit = compose(["data=csv", "data.timezone=Europe/Paris", "features.timezone=UTC"])
    assert explicit.features.timezone == "UTC"
    synthetic = compose([])  # the built-in sample is generated on the UTC clock
    assert synthetic.features.timezone == synthetic.data.timezone == "UTC"


def test_dst_days_have_23_and_25_local_hours() -> None:
    paris = Calendar("Europe/Paris")
    # 2024-03-30 23:00 UTC is midnight in Paris; the 31st has no 02:00 (23 hours)
    spring = _design("2024-03-30 23:00", paris, horizon=23).X[:, COL["hour"]]
    np.testing.assert_array_equal(spring, [1, *range(3, 24), 0])
    # 2024-10-26 22:00 UTC is midnight in Paris; the 27th repeats 02:00 (25 hours)
    autumn = _design("2024-10-26 22:00", paris, horizon=25).X[:, COL["hour"]]
    np.testing.assert_array_equal(autumn, [1, 2, 2, *range(3, 24), 0])
    days = _design("2024-10-26 22:00", paris, horizon=25).X[:, COL["dayofweek"]]
    assert (days[:-1] == 6).all() and days[-1] == 0  # all 25 hours are Sunday, then Monday


def test_bridge_day_and_holiday_lag_day() -> None:
    de = Calendar("Europe/Berlin", "DE")
    # Ascension: Thursday 2024-05-09; Friday the 10th is a bridge day, a working day between it and Saturday
    friday = _design("2024-05-09 21:00", de).X  # targets: Friday 10 May, Berlin time
    assert (friday[:, COL["bridge_day"]] == 1).all() and (friday[:, COL["working_day"]] == 1).all()
    assert (friday[:, COL["lag_day_holiday"]] == 1).all()  # its same-hour lag day is Ascension
    wednesday = _design("2024-05-07 21:00", de).X
    assert (wednesday[:, COL["bridge_day"]] == 0).all() and (wednesday[:, COL["lag_day_holiday"]] == 0).all()
    plain = _design("2024-05-09 21:00", Calendar("Europe/Berlin")).X
    assert (plain[:, COL["bridge_day"]] == 0).all()
    # a model on the v1 feature set gets exactly its 20 columns, the same values as before
    v1 = _design("2024-05-09 21:00", de, features=FEATURE_NAMES_V1).X
    np.testing.assert_array_equal(v1, friday[:, : len(FEATURE_NAMES_V1)])


def test_origins_without_temperature_get_a_neutral_fill() -> None:
    stamps = pd.DatetimeIndex(["2024-01-10", "2024-01-10"]).to_numpy(dtype="datetime64[ns]")
    temp = np.full((2, 24), -5.0)
    temp[1] = np.nan
    X = design_matrix(np.ones((2, 168)), temp, stamps, 24, 15.0, 22.0).X.reshape(2, 24, -1)
    assert (X[0, :, COL["has_temperature"]] == 1).all() and (X[0, :, COL["heating_degrees"]] == 20).all()
    assert (X[1, :, COL["has_temperature"]] == 0).all() and np.isfinite(X[1]).all()
    assert (X[1, :, [COL[c] for c in ("temp_target", "heating_degrees", "heating_degrees_24h")]] == 0).all()


def test_a_file_without_holidays_warns_once_naming_the_setting() -> None:
    line = holiday_warning("file", "", "Europe/London")
    assert line is not None and "\n" not in line and "features.holiday_country=GB" in line
    assert "features.holiday_country=" in str(holiday_warning("file", "", "UTC"))
    assert holiday_warning("file", "GB", "Europe/London") is None
    assert holiday_warning("synthetic", "", "UTC") is None
