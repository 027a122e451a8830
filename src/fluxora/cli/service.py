"""The service from the command line: `serve` (the forecast API) and `status` (what is in production)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fluxora.cli import configured

if TYPE_CHECKING:
    from fluxora.models.native import Contract

ACCESS_LOGGER = "fluxora.api.access"  # its messages are JSON objects (fluxora.api.middleware)
_log = logging.getLogger("fluxora.serve")


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fluxora.api.app import create_app
    from fluxora.api.settings import ServiceSettings

    cfg, home = configured(args.overrides)
    log_format = args.log_format or ("plain" if sys.stdout.isatty() else "json")
    logging.config.dictConfig(log_config(log_format))  # before the app logs its first line
    settings = ServiceSettings.from_config(cfg, home)
    app = create_app(settings)  # refuses an unsafe production configuration before binding
    host, port = args.host or cfg.serve.host, args.port or cfg.serve.port
    _log.info("fluxora serve: http://%s:%s (docs at /docs, model %s@champion)", host, port, settings.model_name)
    _log.info("every /v1 route needs a key; create one with: fluxora keys create --role admin")
    _log.info("then: curl -H 'X-API-Key: <key>' 'http://%s:%s/v1/forecast?series_id=series_000'", host, port)
    # uvicorn's own access log is off: ours (ACCESS_LOGGER) has the request id, route and consumer.
    uvicorn.run(app, host=host, port=port, log_config=log_config(log_format), access_log=False)
    return 0


def log_config(log_format: str) -> dict[str, Any]:
    """Logging for `fluxora serve`: uvicorn's and Fluxora's records, in one format, on stdout."""
    formatter = {"json": JsonLines, "plain": PlainLines}[log_format]
    handler = {"class": "logging.StreamHandler", "formatter": log_format, "stream": "ext://sys.stdout"}
    loggers = ("uvicorn", "fluxora")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {log_format: {"()": formatter}},
        "handlers": {"stdout": handler},
        "loggers": {name: {"handlers": ["stdout"], "level": "INFO", "propagate": False} for name in loggers}
        | {"uvicorn.error": {"level": "INFO"}},  # propagates to "uvicorn"
    }


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """An access record's own fields, or the message for any other record."""
    message = record.getMessage()
    if record.name == ACCESS_LOGGER and message.startswith("{"):
        try:
            parsed = json.loads(message)
        except ValueError:
            return {"message": message}
        return parsed if isinstance(parsed, dict) else {"message": message}
    return {"message": message}


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, then the message or the access fields."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        out = {"time": when, "level": record.levelname, "logger": record.name} | _fields(record)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class PlainLines(logging.Formatter):
    """`time level logger: message`; an access record as `METHOD path status duration` and its ids."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        fields = _fields(record)
        if "status" in fields:
            message = (
                f"{fields.get('method')} {fields.get('path')} {fields.get('status')} "
                f"{fields.get('duration_ms', 0):.1f} ms  id={fields.get('request_id')}"
                + (f" consumer={fields['consumer']}" if fields.get("consumer") else "")
            )
        else:
            message = fields["message"]
        line = f"{when} {record.levelname:<7} {record.name}: {message}"
        return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line


def status(args: argparse.Namespace) -> int:
    from fluxora.cli.render import status_text
    from fluxora.status import collect

    cfg, home = configured(args.overrides)
    report = collect(cfg, home)
    print(json.dumps(report, indent=2, default=str) if args.json else status_text(report))
    return 0


def plot(args: argparse.Namespace) -> int:
    """The champion's forecast of one series from its latest online state, as the service serves
    it, after the series' validated actuals, written as a self-contained HTML page."""
    import numpy as np
    import pandas as pd

    from fluxora.api import weather
    from fluxora.api.model_store import ModelStore
    from fluxora.api.online import OnlineFeatures
    from fluxora.api.picture import forecast_page
    from fluxora.api.routes.forecast import PLOT_LEVELS, picture
    from fluxora.api.settings import ServiceSettings
    from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP
    from fluxora.errors import FluxoraError
    from fluxora.features.names import LOAD_HISTORY
    from fluxora.models.native import without_temperature

    cfg, home = configured(args.overrides)
    start = None
    if args.start:
        try:
            start = pd.Timestamp(args.start)
        except ValueError:
            raise FluxoraError(f"--from {args.start!r} is not an ISO date or time, e.g. 2024-06-01T00:00Z") from None
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    model = ModelStore(ServiceSettings.from_config(cfg, home)).load_champion()  # RegistryError: no champion
    c = model.forecaster.contract
    horizon = _horizon_steps(args.horizon, model.version, c) if args.horizon is not None else min(24, c.horizon)
    states = OnlineFeatures(home).states([args.series], c.feature_service, weather.online_features(c))
    if states.missing:
        raise FluxoraError(f"unknown series {args.series!r}: not in the online store (fluxora run materializes it)")
    if without_temperature(states.features, c).size:
        raise FluxoraError(
            f"series {args.series!r} has no temperature; model version {model.version} cannot forecast it"
        )
    history = np.asarray(states.features[LOAD_HISTORY][0], dtype="float64")
    weather.apply(states.features, states.origins, c, horizon)
    levels = PLOT_LEVELS if set(PLOT_LEVELS) <= set(c.quantiles) else ()
    with np.errstate(all="ignore"):
        result = model.forecaster.forecast(states.features, states.origins, horizon, levels)
    drawn = picture(args.series, model.version, states.origins[0], history, result)
    # Actuals from the validated data (the online state holds only the last week before the origin).
    if home.validated_data.is_file():
        data = pd.read_parquet(
            home.validated_data, columns=[SERIES_ID, TIMESTAMP, LOAD], filters=[(SERIES_ID, "==", args.series)]
        )
        origin = pd.Timestamp(drawn.origin)
        first = start if start is not None else origin - pd.Timedelta(days=7)
        data = data[(data[TIMESTAMP] >= first) & data[LOAD].notna()].sort_values(TIMESTAMP)
        if data.empty:
            raise FluxoraError(f"no validated actuals of {args.series!r} from {first.isoformat()}")
        times = [t.to_pydatetime() for t in data[TIMESTAMP]]
        drawn = dataclasses.replace(drawn, actual_times=times, actual=data[LOAD].astype("float64").tolist())
    output = args.output or home.reports / f"plot_{args.series}.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(forecast_page(drawn), encoding="utf-8")
    origin_text = f"{drawn.origin:%Y-%m-%d %H:%M} UTC"
    ahead = f"{horizon} steps of {c.resolution}" if c.resolution != "h" else f"{horizon} h"
    print(f"{output}  ({args.series}, model version {model.version}, origin {origin_text}, {ahead})")
    return 0


def _horizon_steps(value: str, version: str, contract: Contract) -> int:
    """`--horizon` in the model's steps: steps or a duration, read as `train.horizon` is."""
    from fluxora.config import parse_horizon
    from fluxora.errors import FluxoraError

    try:
        steps = contract.step.horizon(parse_horizon("--horizon", value))
    except ValueError as exc:
        raise FluxoraError(f"--horizon: {exc}") from None
    if not 1 <= steps <= contract.horizon:
        raise FluxoraError(
            f"--horizon must be between 1 and {contract.horizon} steps of {contract.resolution} "
            f"for model version {version} (asked {value!r})"
        )
    return steps


def monitor(args: argparse.Namespace) -> int:
    """`fluxora monitor ui`: Evidently's own UI on the monitoring workspace, once it has runs."""
    import os

    from fluxora.errors import FluxoraError
    from fluxora.monitoring.history import PROJECT, workspace_dir, workspace_runs

    _, home = configured(args.overrides)
    path = workspace_dir(home.root)
    runs = workspace_runs(path).get(PROJECT, 0)
    if not runs:
        raise FluxoraError(
            f"no monitoring runs in {path} yet: run `fluxora run` (or `fluxora trigger monitor` under "
            "`fluxora deploy`) first; every monitoring run adds one"
        )
    if not 0 < args.port < 65536:
        raise FluxoraError(f"--port must be between 1 and 65535, got {args.port}")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # no telemetry from the UI
    print(f"Evidently UI on {path} ({runs} monitoring runs in project {PROJECT!r})", flush=True)
    print(f"open http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    from evidently.ui.service.app import get_config, run

    run(get_config(host=args.host, port=args.port, workspace=str(path)))
    return 0
