"""`fluxora tune`: the XGBoost search on the data `fluxora run` ingests, and `tune --show`."""

from __future__ import annotations

import argparse
import sys

from fluxora.cli import configured
from fluxora.errors import FluxoraError

EXIT_INTERRUPTED = 130


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tune(args: argparse.Namespace) -> int:
    """Tune, print the result; the overrides alone on the last line of stdout."""
    if args.show:
        return _show()
    from fluxora import steps
    from fluxora.models.tuning import check

    cfg, home = configured(args.overrides)
    check(cfg.tune, cfg.train.promotion_metric)  # a bad tune.* setting fails before anything is written
    for step in (steps.ingest, steps.validate):  # the same data path as `fluxora run` and `fluxora backtest`
        progress(f"{step.__name__}: {step(cfg, home).outputs()}")
    result = steps.tune(cfg, home, progress=progress)
    against = (
        f" vs {result.configured_value:.5g} with the configured settings" if result.configured_value is not None else ""
    )
    print(
        f"tune: study {result.study}: best {result.metric} {result.value:.5g} (#{result.best_trial} of "
        f"{result.trials} finished){against}, on the windows before the gate's"
    )
    if result.interrupted:
        print("tune: interrupted; the finished trials are kept, the same command continues the study")
    print(f"tune: wrote {result.output} (MLflow run {result.run_id}); pass to `fluxora run`:")
    print(" ".join(result.overrides))
    return EXIT_INTERRUPTED if result.interrupted else 0


def _show() -> int:
    """The last result's overrides, read from the home (no configuration, no search library)."""
    import yaml

    from fluxora.paths import Home

    path = Home.from_env().tuned("xgboost")
    if not path.is_file():
        raise FluxoraError(f"no tuning result at {path}; run `fluxora tune` first")
    print(" ".join(yaml.safe_load(path.read_text())["overrides"]))
    return 0
