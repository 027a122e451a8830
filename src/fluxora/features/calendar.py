"""Calendar features: deterministic functions of a time, so they can be computed for any
instant (the forecast origin in the feature store, target times in a design matrix) with no
leakage. Holidays come from the `holidays` package for one country, in local time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR = "hour"
DAY_OF_WEEK = "day_of_week"  # Monday = 0
DAY_OF_YEAR = "day_of_year"
IS_HOLIDAY = "is_holiday"
IS_WORKING_DAY = "is_working_day"  # not a weekend day and not a public holiday
CALENDAR_FEATURES = (HOUR, DAY_OF_WEEK, DAY_OF_YEAR, IS_HOLIDAY, IS_WORKING_DAY)


def holiday_dates(country: str, years: list[int], subdivision: str = "") -> set[pd.Timestamp]:
    """Public holidays of `country` (ISO code, e.g. "US", "GB", "DE") in the given years; none for ""."""
    import holidays

    if not country:
        return set()
    return {pd.Timestamp(d) for d in holidays.country_holidays(country, subdiv=subdivision or None, years=years)}


def calendar_frame(times: pd.Series | pd.DatetimeIndex, country: str, timezone: str) -> pd.DataFrame:
    """Calendar of each UTC time, in the series' local time zone (int32 columns, same order)."""
    local = pd.DatetimeIndex(times).tz_convert(timezone)
    days = local.normalize().tz_localize(None)
    years = sorted({int(y) for y in local.year.unique()}) if len(local) else []
    holiday = np.asarray(days.isin(list(holiday_dates(country, years))), dtype="int32")
    dow = np.asarray(local.dayofweek, dtype="int32")
    return pd.DataFrame(
        {
            HOUR: np.asarray(local.hour, dtype="int32"),
            DAY_OF_WEEK: dow,
            DAY_OF_YEAR: np.asarray(local.dayofyear, dtype="int32"),
            IS_HOLIDAY: holiday,
            IS_WORKING_DAY: ((dow < 5) & (holiday == 0)).astype("int32"),
        }
    )


def zone_country(timezone: str) -> str:
    """The ISO country code of an IANA zone (tzdata's zone.tab), "" when it has none (UTC)."""
    from importlib import resources

    try:
        table = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return ""
    for line in table.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and not line.startswith("#") and parts[2] == timezone:
            return parts[0]
    return ""


def holiday_warning(source: str, holiday_country: str, timezone: str) -> str | None:
    """One line for a real load source with no holiday country (holidays look like working days
    to its models), naming the setting; None for synthetic data or when a country is set."""
    if source == "synthetic" or holiday_country:
        return None
    country = zone_country(timezone)
    setting = (
        f"features.holiday_country={country} ({timezone} is in {country})"
        if country
        else ("features.holiday_country=GB (your country's code)")
    )
    return f"no public holidays in the calendar features: set {setting} so models see your holidays"
