"""The service from the command line: `serve` (the forecast API) and `status` (what is in production)."""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

from fluxora.cli import configured

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
