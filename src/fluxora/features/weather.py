"""Weather features: observed temperature terms at a time, and issued temperature forecasts.

Observed terms are stamped at their observation time. Forecasts are stamped at the origin
they serve and hold the forecast temperature for the steps after it at the model's step (a
row at `o` holds o+1 .. o+H steps, sub-hourly steps interpolated between the issued hours), so
a point-in-time read at origin `o` returns the latest forecast issued at or before `o` — never
a forecast issued later, and never observed values posing as forecasts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from fluxora.data.frames import data_resolution
from fluxora.data.schema import ISSUED_AT, SERIES_ID, TARGET_TIME, TEMPERATURE, TIMESTAMP
from fluxora.features.names import EVENT_TIMESTAMP, TEMP_FORECAST, WEATHER_ISSUED_AT, WEATHER_ORIGIN

HEATING_DEGREES = "heating_degrees"  # max(heating_base - T, 0), degree C, at the stamped hour
COOLING_DEGREES = "cooling_degrees"  # max(T - cooling_base, 0)
HEATING_DEGREE_HOURS_24H = "heating_degree_hours_24h"  # sum over the 24 h ending at the stamp
COOLING_DEGREE_HOURS_24H = "cooling_degree_hours_24h"
TEMP_MIN_24H = "temp_min_24h"
TEMP_MAX_24H = "temp_max_24h"
WEATHER_FEATURES = (
    TEMPERATURE,
    HEATING_DEGREES,
    COOLING_DEGREES,
    HEATING_DEGREE_HOURS_24H,
    COOLING_DEGREE_HOURS_24H,
    TEMP_MIN_24H,
    TEMP_MAX_24H,
)

WEATHER_SCHEMA = pa.schema(
    [
        pa.field(SERIES_ID, pa.string()),
        pa.field(EVENT_TIMESTAMP, pa.timestamp("ns", tz="UTC")),
        *(pa.field(name, pa.float64()) for name in WEATHER_FEATURES),
    ]
)


def observed_weather(data: pd.DataFrame, heating_base_c: float, cooling_base_c: float) -> pa.Table:
    """Observed temperature terms per (series, hour); rolling terms need a full 24 h window.
    Load-only series have no rows (typed by `WEATHER_SCHEMA` even when no series has weather)."""
    temp = data[TEMPERATURE].astype("float64")
    heating = np.maximum(heating_base_c - temp, 0.0)
    cooling = np.maximum(temp - cooling_base_c, 0.0)
    frame = pd.DataFrame(
        {SERIES_ID: data[SERIES_ID].astype(str), "t": temp, "h": heating, "c": cooling}, index=data.index
    )
    k = data_resolution(data).per_hour  # a day of steps; degree-hours are step sums / steps per hour
    roll = frame.groupby(SERIES_ID, sort=False)[["t", "h", "c"]].rolling(24 * k, min_periods=24 * k)
    out = pd.DataFrame(
        {
            SERIES_ID: frame[SERIES_ID],
            EVENT_TIMESTAMP: pd.to_datetime(data[TIMESTAMP], utc=True),
            TEMPERATURE: temp,
            HEATING_DEGREES: heating,
            COOLING_DEGREES: cooling,
            HEATING_DEGREE_HOURS_24H: _ungroup(roll.sum()["h"], frame.index) / k,
            COOLING_DEGREE_HOURS_24H: _ungroup(roll.sum()["c"], frame.index) / k,
            TEMP_MIN_24H: _ungroup(roll.min()["t"], frame.index),
            TEMP_MAX_24H: _ungroup(roll.max()["t"], frame.index),
        }
    ).dropna()
    out[EVENT_TIMESTAMP] = out[EVENT_TIMESTAMP].astype("datetime64[ns, UTC]")
    return pa.Table.from_pandas(out.reset_index(drop=True), schema=WEATHER_SCHEMA, preserve_index=False)


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Times as int64 nanoseconds since the epoch, UTC (naive values are taken as UTC)."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype("int64")


def _ungroup(values: pd.Series, index: pd.Index) -> pd.Series:
    return values.reset_index(level=0, drop=True).reindex(index)


FORECAST_SCHEMA = pa.schema(
    [
        pa.field(SERIES_ID, pa.string()),
        pa.field(EVENT_TIMESTAMP, pa.timestamp("ns", tz="UTC")),
        pa.field(TEMP_FORECAST, pa.list_(pa.float32())),
        pa.field(WEATHER_ISSUED_AT, pa.int64()),
        pa.field(WEATHER_ORIGIN, pa.int64()),
    ]
)
_HOUR = 3_600_000_000_000  # ns
_SECOND = 1_000_000_000
_LATEST = np.iinfo("int64").max  # "issued by now": the as-of time of each series' serving row


def forecast_states(
    forecasts: pd.DataFrame | None,
    hours: int,
    max_age_hours: int,
    last_origins: dict[str, np.datetime64] | None = None,
    step_ns: int = _HOUR,
) -> pa.Table:
    """The temperature forecast known at each origin `o` (every `step_ns`, the model's step), for
    the `hours` after it at that step: o+1 step .. o+`hours` (NaN where there is none), with the
    newest issue time used and the origin itself (seconds since the epoch).

    `forecasts` is long format (series_id, issued_at, target_time, temperature), hourly target
    times, one row per vintage: a full run per issue time (a utility's feed, Open-Meteo's live
    forecast) or fixed lead offsets (Open-Meteo's previous runs: each hour predicted 1, 2, ...
    days before). For each target hour the latest vintage issued at or before `o` wins, unless it
    was issued more than `max_age_hours` before `o` (stale: treated as missing). A sub-hourly
    step between two hours is interpolated linearly in time between their values (NaN unless
    both are known); a step on the hour reads its hour, so hourly states are the hourly values.

    `last_origins` (series -> its latest load timestamp) bounds each series' rows: no row after
    it, and its row *at* it, the state the online store serves, uses every vintage issued so far,
    also those issued after the last load arrived (the live forecast is newer than the data; that
    origin has no observed target, so no training or backtest origin sees a later issue). Without
    it, rows run to `max_age_hours` past each series' latest issue, all point in time.

    None or empty (no forecast source configured) gives an empty table with the same schema:
    observed data is never a forecast.
    """
    if forecasts is None or forecasts.empty:
        return FORECAST_SCHEMA.empty_table()
    if step_ns <= 0 or _HOUR % step_ns:
        raise ValueError(f"model step {step_ns} ns does not divide an hour")
    issued, target = _utc_ns(forecasts[ISSUED_AT]), _utc_ns(forecasts[TARGET_TIME])
    lead = (target - issued) // _HOUR
    keep = (lead >= 1) & (lead <= max_age_hours + hours)  # a value for the issue hour itself is not a forecast
    names, codes = np.unique(forecasts[SERIES_ID].astype(str).to_numpy()[keep], return_inverse=True)
    vintages = pd.DataFrame(
        {
            ISSUED_AT: issued[keep],
            # One integer key per (series, target hour) keeps the as-of join fast on millions of cells.
            "key": codes.astype("int64") * (1 << 32) + target[keep] // _HOUR,
            TEMPERATURE: forecasts[TEMPERATURE].to_numpy(dtype="float32")[keep],
        }
    ).drop_duplicates(["key", ISSUED_AT], keep="last")
    if vintages.empty:
        return FORECAST_SCHEMA.empty_table()
    # Origins per series at the model step, from its first issue to its last load (or `max_age` past its last issue).
    span = vintages.assign(code=vintages["key"] // (1 << 32)).groupby("code")[ISSUED_AT].agg(["min", "max"])
    first = -(-span["min"].to_numpy() // step_ns) * step_ns  # ceil to the step
    last = span["max"].to_numpy() + max_age_hours * _HOUR
    bounded = np.zeros(len(span), dtype=bool)
    if last_origins is not None:
        load_end = np.array(
            [_ns(last_origins.get(str(names[c]))) for c in span.index.to_numpy()], dtype="int64"
        )  # 0 for a series without load: no rows
        bounded = load_end > 0
        last = np.where(bounded, load_end // step_ns * step_ns, -1)
    count = np.maximum((last - first) // step_ns + 1, 0)
    origin_code = np.repeat(span.index.to_numpy(), count)
    origin_at = (
        np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)) * step_ns
    )
    serving = np.repeat(bounded, count) & (origin_at == np.repeat(last, count))
    as_of = np.where(serving, _LATEST, origin_at)
    n = len(origin_at)
    # The hours each origin's steps fall between: from the hour of its first step, `hours` of
    # them hourly, two more below the hour (its last step may end past the next whole hour).
    base = (origin_at + step_ns) // _HOUR
    m = hours if step_ns == _HOUR else hours + 2
    # Every (origin, hour) asks for its target hour's latest vintage issued by the origin.
    wanted = pd.DataFrame(
        {
            "as_of": np.repeat(as_of, m),
            "key": (np.repeat(origin_code * (1 << 32) + base, m) + np.tile(np.arange(m, dtype="int64"), n)),
            "cell": np.arange(n * m),
        }
    )
    vintages = vintages.sort_values(ISSUED_AT, kind="stable")
    found = pd.merge_asof(
        wanted.sort_values("as_of", kind="stable"),
        vintages[[ISSUED_AT, "key"]].assign(vi=np.arange(len(vintages), dtype="float64")),
        left_on="as_of",
        right_on=ISSUED_AT,
        by="key",
        direction="backward",
    )
    hit = found["vi"].notna().to_numpy()
    cell = found["cell"].to_numpy()[hit]
    vi = found["vi"].to_numpy()[hit].astype("int64")  # row of the winning vintage (exact: small integers)
    when = vintages[ISSUED_AT].to_numpy(dtype="int64")[vi]
    fresh = np.repeat(origin_at, m)[cell] - when <= max_age_hours * _HOUR
    cell, vi, when = cell[fresh], vi[fresh], when[fresh]
    at_hour = np.full(n * m, np.nan, dtype="float32")
    at_hour[cell] = vintages[TEMPERATURE].to_numpy(dtype="float32")[vi]
    issue = np.full(n * m, -1, dtype="int64")
    issue[cell] = when
    values, newest = _at_steps(
        at_hour.reshape(n, m), issue.reshape(n, m), origin_at, base, hours * (_HOUR // step_ns), step_ns
    )
    rows = newest >= 0  # an origin without any fresh cell has no forecast: no row
    width = values.shape[1]
    offsets = pa.array(np.arange(0, (int(rows.sum()) + 1) * width, width, dtype="int32"))
    return pa.table(
        {
            SERIES_ID: pa.array(names[origin_code[rows]], pa.string()),
            EVENT_TIMESTAMP: pa.array(origin_at[rows], pa.timestamp("ns", tz="UTC")),
            TEMP_FORECAST: pa.ListArray.from_arrays(offsets, pa.array(values[rows].reshape(-1))),
            WEATHER_ISSUED_AT: pa.array(newest[rows] // _SECOND, pa.int64()),
            WEATHER_ORIGIN: pa.array(origin_at[rows] // _SECOND, pa.int64()),
        },
        schema=FORECAST_SCHEMA,
    )


def _at_steps(
    at_hour: np.ndarray, issue: np.ndarray, origin_at: np.ndarray, base: np.ndarray, steps: int, step_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, steps) values at o+1..o+steps model steps from (n, m) hourly ones starting at hour
    `base`: linear in time between the two hours around a step, the hour itself on the hour;
    and per origin the newest issue time among the hours its values used (-1: none)."""
    if step_ns == _HOUR:  # hourly: the steps are the hours (no index arrays of the table's size)
        return at_hour, np.where(np.isfinite(at_hour), issue, -1).max(axis=1, initial=-1)
    t = origin_at[:, None] + np.arange(1, steps + 1, dtype="int64")[None, :] * step_ns
    below = t // _HOUR - base[:, None]  # column of the hour at or before each step
    frac = ((t % _HOUR) / _HOUR).astype("float32")
    above = np.minimum(below + 1, at_hour.shape[1] - 1)
    rows = np.arange(len(origin_at))[:, None]
    lo, hi = at_hour[rows, below], at_hour[rows, above]
    between = frac > 0
    values = np.where(between, lo + frac * (hi - lo), lo).astype("float32")
    ok = np.isfinite(values)
    newest = np.where(ok, issue[rows, below], -1)
    newest = np.maximum(newest, np.where(ok & between, issue[rows, above], -1))
    return values, newest.max(axis=1, initial=-1)


def _ns(value: np.datetime64 | None) -> int:
    return 0 if value is None else int(np.asarray(value, dtype="datetime64[ns]").astype("int64"))


class IssuedLookup:
    """The `weather_forecast` rows by (series, origin), for building origin batches in memory
    (backtests): exactly what Feast's point-in-time read returns for the same origins."""

    def __init__(self, table: pa.Table) -> None:
        self._rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if table.num_rows == 0:
            return
        frame = table.select([SERIES_ID, WEATHER_ORIGIN]).to_pandas()
        hours = len(table.column(TEMP_FORECAST)[0])
        values = (
            table.column(TEMP_FORECAST).combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, hours)
        )
        for sid, idx in frame.groupby(SERIES_ID, sort=False).indices.items():
            order = idx[np.argsort(frame[WEATHER_ORIGIN].to_numpy()[idx], kind="stable")]
            self._rows[str(sid)] = (frame[WEATHER_ORIGIN].to_numpy(dtype="int64")[order], values[order])

    def __bool__(self) -> bool:
        return bool(self._rows)

    def at(self, series_id: str, origins: np.ndarray, horizon: int) -> np.ndarray:
        """(n, horizon) forecast temperatures known at `origins` (datetime64, UTC); NaN without one."""
        out = np.full((len(origins), horizon), np.nan)
        found = self._rows.get(series_id)
        if found is None or not len(origins):
            return out
        stamps, values = found
        seconds = np.asarray(origins, dtype="datetime64[ns]").astype("int64") // _SECOND
        pos = np.clip(np.searchsorted(stamps, seconds), 0, len(stamps) - 1)
        hit = stamps[pos] == seconds
        width = min(horizon, values.shape[1])
        out[hit, :width] = values[pos[hit], :width]
        return out
