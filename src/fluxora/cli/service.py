"""The service from the command line: `serve` (the forecast API) and `status` (what is in production)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from fluxora.cli import configured


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fluxora.api.app import create_app
    from fluxora.api.settings import ServiceSettings

    cfg, home = configured(args.overrides)
    settings = ServiceSettings.from_config(cfg, home)
    app = create_app(settings)  # refuses an unsafe production configuration before binding
    host, port = args.host or cfg.serve.host, args.port or cfg.serve.port
    print(f"fluxora serve: http://{host}:{port}  (docs at /docs, model {settings.model_name}@champion)", flush=True)
    print("  every /v1 route needs a key; create one with:  fluxora keys create --role admin", flush=True)
    print(f"  then:  curl -H 'X-API-Key: <key>' 'http://{host}:{port}/v1/forecast?series_id=series_000'", flush=True)
    _access_log_to_stdout()
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)  # ours is structured JSON
    return 0


def _access_log_to_stdout() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))  # each record is already one JSON object
    access = logging.getLogger("fluxora.api.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def status(args: argparse.Namespace) -> int:
    from fluxora.cli.render import status_text
    from fluxora.status import collect

    cfg, home = configured(args.overrides)
    report = collect(cfg, home)
    print(json.dumps(report, indent=2, default=str) if args.json else status_text(report))
    return 0
