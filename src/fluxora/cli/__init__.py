"""The `fluxora` command: the top layer. It parses, composes the configuration once, makes the home
once, and hands both to the library, the flows or the service. Only this package (and `flows/`)
may import Prefect or the flows.

- `parser`: the commands, options and help;
- `jobs`: pipeline work (run, backtest, DVC stages) and the scheduler (deploy, trigger);
- `admin`: the service database (users, keys), the registry's aliases, configuration;
- `service`: serve, status, plot and monitor ui (Evidently's UI on the monitoring history);
- `tuning`: tune (Optuna search of XGBoost's settings) and `tune --show`;
- `render`: what the commands print.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fluxora.cli.parser import parse
from fluxora.errors import ConfigError, FluxoraError

if TYPE_CHECKING:
    from fluxora.config import FluxoraConfig
    from fluxora.paths import Home

EXIT_ERROR, EXIT_CONFIG = 1, 2


def configured(overrides: Sequence[str]) -> tuple[FluxoraConfig, Home]:
    """The configuration, composed once for this process (a bad override fails here, before
    anything is written), and the home made from it: what every command passes down."""
    from fluxora.config import compose
    from fluxora.runtime import prepare

    cfg = compose(list(overrides))
    return cfg, prepare(cfg=cfg)


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    """The function for `command`; its module is imported only when that command runs."""
    if command in ("run", "backtest", "stage", "deploy", "trigger"):
        from fluxora.cli import jobs as module
    elif command == "tune":
        from fluxora.cli import tuning as module  # type: ignore[no-redef]
    elif command in ("serve", "status", "plot", "monitor"):
        from fluxora.cli import service as module  # type: ignore[no-redef]
    else:
        from fluxora.cli import admin as module  # type: ignore[no-redef]
    handler: Callable[[argparse.Namespace], int] = getattr(module, command)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return _handler(args.command)(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FluxoraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
