"""Weather: collect the configured issued-forecast source, validate it, version and store the
vintages, refresh the `weather_forecast` feature view and the online store.

The features step calls the same `collect`, `store` and `forecast_table` (so a full pipeline run
and the weather flow agree); the weather step adds its own validation report, the data version
history, and publishes the one view without rebuilding the load features or retraining.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import ISSUED_AT, SERIES_ID, TARGET_TIME, TIMESTAMP
from fluxora.errors import InsufficientDataError
from fluxora.paths import Home
from fluxora.steps.base import StepResult

_log = logging.getLogger(__name__)

VIEW = "weather_forecast"
REPORT = "weather_validation"  # weather_validation.json / .txt in the reports folder
VERSIONS = "weather_versions.jsonl"  # one line per new vintage set (data version), oldest first
NOT_CONFIGURED = (
    "no weather forecast source configured (data.weather_forecast.path or .provider=open_meteo|synthetic): "
    "nothing to do"
)


@dataclass(frozen=True)
class WeatherResult(StepResult):
    step = "weather"
    configured: bool
    message: str = ""
    path: str = ""
    rows_in: int = 0  # forecast rows read from the source
    rows_out: int = 0  # rows kept this run (rows_in = rows_out + sum(dropped))
    dropped: dict[str, int] = field(default_factory=dict)  # rows dropped, by reason
    gaps: int = 0  # target hours missing inside the runs kept (found, not filled)
    vintages: int = 0  # distinct (series, issue time) runs stored
    rows_stored: int = 0  # vintage rows stored (with the runs kept from earlier fetches)
    data_version: str = ""  # MD5 of the stored vintages (like the load data's DVC digest)
    previous_version: str = ""
    changed: bool = False  # a new vintage set: a new data version, recorded in weather_versions.jsonl
    latest_issued: dict[str, str] = field(default_factory=dict)  # series -> newest issue time (UTC)
    report: str = ""
    rows: int = 0  # rows of the weather_forecast feature view
    online_store: str = ""
    materialized_until: str = ""


# --- shared with the features step -----------------------------------------------------------


def collect(cfg: FluxoraConfig, data: pd.DataFrame) -> Any:
    """The screened forecasts (`weather_forecast.Screened`) `data.weather_forecast` names for the
    validated `data`, or None when no source is configured."""
    from fluxora.data import weather_forecast
    from fluxora.paths import project_root

    return weather_forecast.collect(cfg.data, data, project_root())


def store(cfg: FluxoraConfig, home: Home, screened: Any) -> pd.DataFrame | None:
    """Write the screened vintages to the home (the offline record of every vintage), keeping a
    provider's earlier runs; None, and no file, when no source is configured: observations are
    never passed off as forecasts."""
    from fluxora.data import weather_forecast

    if screened is None:
        home.weather_forecasts.unlink(missing_ok=True)
        return None
    _log.info("weather forecasts: %s", screened.summary())
    forecasts = screened.forecasts
    if cfg.data.weather_forecast.provider == "open_meteo" and home.weather_forecasts.is_file():
        # A provider's live forecast is only ever its latest run: keep the runs fetched before.
        forecasts = weather_forecast.merge(io.read_parquet(home.weather_forecasts), forecasts)
    if not _same(home, forecasts):  # an unchanged vintage set keeps its file, so its data version
        io.write_parquet(forecasts, home.weather_forecasts)
    return forecasts


def _same(home: Home, forecasts: pd.DataFrame) -> bool:
    if not home.weather_forecasts.is_file():
        return False
    stored = io.read_parquet(home.weather_forecasts)
    return stored.shape == forecasts.shape and stored.reset_index(drop=True).equals(forecasts.reset_index(drop=True))


def forecast_table(cfg: FluxoraConfig, vintages: pd.DataFrame | None, data: pd.DataFrame) -> Any:
    """The `weather_forecast` view's table: per series and origin at the data's (model) step up to
    its latest load timestamp, the forecast as issued by then (`features.weather.forecast_states`)."""
    from fluxora.data.frames import data_resolution
    from fluxora.features.weather import forecast_states

    wf = cfg.data.weather_forecast
    last = {
        str(sid): np.datetime64(t.tz_convert(None), "ns") for sid, t in data.groupby(SERIES_ID)[TIMESTAMP].max().items()
    }
    return forecast_states(vintages, wf.hours, wf.max_age_hours, last, data_resolution(data).step_ns)


# --- the weather step ------------------------------------------------------------------------


def weather(cfg: FluxoraConfig, home: Home) -> WeatherResult:
    """Collect, validate, version and store the issued forecasts, then publish the
    `weather_forecast` view to the offline and online stores. Nothing configured: says so, does
    nothing. Needs the validated load data (its series and span) and the load features."""
    from fluxora.features import store as fs

    if not cfg.data.weather_forecast.path and not cfg.data.weather_forecast.provider:
        return WeatherResult(configured=False, message=NOT_CONFIGURED)
    if not home.validated_data.is_file() or not fs.table_path(home, "origin_state").is_file():
        raise InsufficientDataError(
            "the weather step needs the validated load data and its features: run the ingest flow "
            "first (`fluxora run`, or `fluxora trigger ingest`)"
        )
    data = io.read_parquet(home.validated_data)
    screened = collect(cfg, data)
    if screened is None:  # pragma: no cover - collect returns None only without a source
        return WeatherResult(configured=False, message=NOT_CONFIGURED)
    previous = io.file_digest(home.weather_forecasts) if home.weather_forecasts.is_file() else ""
    gaps = count_gaps(screened.forecasts)
    vintages = store(cfg, home, screened)
    assert vintages is not None
    version = io.file_digest(home.weather_forecasts)
    latest = latest_issued(vintages)
    report = validation_report(screened, gaps, vintages, version, previous, latest)
    report_path = write_report(report, home)
    if version != previous:
        record_version(home, report)
    table = forecast_table(cfg, vintages, data)
    if not table.num_rows:
        raise InsufficientDataError(
            f"no weather forecast reaches the load data's latest origins ({screened.summary()}): "
            "check the source's series ids and issue times"
        )
    published = fs.publish(home, {VIEW: table}, cfg.infra)
    return WeatherResult(
        configured=True,
        message=screened.summary(),
        path=str(home.weather_forecasts),
        rows_in=screened.rows_read,
        rows_out=len(screened.forecasts),
        dropped=dict(screened.dropped),
        gaps=gaps,
        vintages=report["vintages"],
        rows_stored=len(vintages),
        data_version=version,
        previous_version=previous,
        changed=version != previous,
        latest_issued=latest,
        report=str(report_path),
        rows=table.num_rows,
        online_store=cfg.infra.online_store,
        materialized_until=str(published.materialized_until),
    )


def count_gaps(forecasts: pd.DataFrame) -> int:
    """Hourly target times missing inside each run (series, issue time): between its first and
    last target hour. Reported, not filled (a missing hour is a step without a forecast)."""
    if forecasts.empty:
        return 0
    spans = forecasts.groupby([SERIES_ID, ISSUED_AT])[TARGET_TIME].agg(["min", "max", "nunique"])
    hour_ns = 3_600 * 10**9
    first = spans["min"].to_numpy("datetime64[ns]").astype("int64")
    last = spans["max"].to_numpy("datetime64[ns]").astype("int64")
    expected = (last - first) // hour_ns + 1
    return int(np.clip(expected - spans["nunique"].to_numpy(), 0, None).sum())


def latest_issued(vintages: pd.DataFrame) -> dict[str, str]:
    """Per series, the newest issue time stored (ISO UTC)."""
    newest = vintages.groupby(SERIES_ID)[ISSUED_AT].max()
    return {str(s): pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ") for s, t in newest.items()}


def validation_report(
    screened: Any, gaps: int, vintages: pd.DataFrame, version: str, previous: str, latest: dict[str, str]
) -> dict[str, Any]:
    """Every row read accounted for: kept, or dropped under its (first) reason."""
    dropped = {why: n for why, n in screened.dropped.items()}
    rows_dropped = sum(dropped.values())
    return {
        "rows_in": screened.rows_read,
        "rows_out": len(screened.forecasts),
        "rows_dropped": rows_dropped,
        "accounted": screened.rows_read == len(screened.forecasts) + rows_dropped,
        "dropped": dropped,
        "gaps": gaps,
        "series": int(vintages[SERIES_ID].nunique()),
        "vintages": int(vintages[[SERIES_ID, ISSUED_AT]].drop_duplicates().shape[0]),
        "rows_stored": len(vintages),
        "data_version": version,
        "previous_version": previous,
        "changed": version != previous,
        "latest_issued": latest,
        "at": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def render_text(report: dict[str, Any]) -> str:
    lines = [
        "weather forecast validation",
        f"rows in        {report['rows_in']}",
        f"rows kept      {report['rows_out']}",
        f"rows dropped   {report['rows_dropped']}",
    ]
    lines += [f"  {n:>8}  {why}" for why, n in report["dropped"].items()]
    lines += [
        f"accounted      {'yes' if report['accounted'] else 'NO'} (rows in = kept + dropped)",
        f"gaps           {report['gaps']} target hours missing inside runs",
        f"series         {report['series']}",
        f"vintages       {report['vintages']} runs, {report['rows_stored']} rows stored",
        f"data version   {report['data_version']}" + (" (new)" if report["changed"] else " (unchanged)"),
    ]
    lines += [f"latest issue   {sid}: {t}" for sid, t in report["latest_issued"].items()]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], home: Home) -> Any:
    """`weather_validation.json` and `.txt` in the reports folder, atomically; the JSON's path."""
    path = io.atomic_write_text(home.reports / f"{REPORT}.json", json.dumps(report, indent=2))
    io.atomic_write_text(home.reports / f"{REPORT}.txt", render_text(report))
    return path


def record_version(home: Home, report: dict[str, Any]) -> None:
    """Append the new vintage set's version to the history (`weather_versions.jsonl`)."""
    keep = ("data_version", "previous_version", "at", "rows_stored", "vintages", "latest_issued")
    line = json.dumps({k: report[k] for k in keep})
    history = home.reports / VERSIONS
    old = history.read_text() if history.is_file() else ""
    io.atomic_write_text(history, old + line + "\n")


def versions(home: Home) -> list[dict[str, Any]]:
    """The recorded vintage-set versions, oldest first."""
    history = home.reports / VERSIONS
    if not history.is_file():
        return []
    return [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
