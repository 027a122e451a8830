"""The `fluxora` command line: every command, its options and its help text."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

STEPS = ("ingest", "validate", "features", "train", "monitor")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fluxora",
        description="Fluxora: electric load forecasting for many series, kept good in production.",
        epilog="Run-time state lives in $FLUXORA_HOME (default: .fluxora/ in the project). "
        "Overrides use Hydra syntax, e.g. `fluxora run train.horizon=48 data.n_series=5`.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the whole pipeline as a Prefect flow (ingest → monitor)")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=xgboost train.horizon=24")

    status = sub.add_parser("status", help="champion model, online-store freshness, latest drift and realized accuracy")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. infra=production")

    serve = sub.add_parser("serve", help="start the forecast API on the champion model")
    serve.add_argument("--host", help="bind address (default: serve.host from config)")
    serve.add_argument("--port", type=int, help="port (default: serve.port from config)")
    serve.add_argument(
        "--log-format",
        choices=("plain", "json"),
        help="one format for every log line: plain text, or one JSON object per line "
        "(default: plain on a terminal, json otherwise)",
    )
    serve.add_argument("overrides", nargs="*", help="Hydra overrides")

    plot = sub.add_parser(
        "plot", help="draw a series' recent actuals, the champion's forecast and its 80 %% interval (HTML)"
    )
    plot.add_argument("series", help="series id, e.g. series_000")
    plot.add_argument(
        "--from", dest="start", help="first hour of actuals shown, ISO (default: 7 days before the origin)"
    )
    plot.add_argument(
        "--horizon", help="steps at the model's resolution or a duration, e.g. 24h, 90min (default: serve's, 24 steps)"
    )
    plot.add_argument(
        "--output", type=Path, help="HTML file to write (default: $FLUXORA_HOME/reports/plot_SERIES.html)"
    )
    plot.add_argument("overrides", nargs="*", help="Hydra overrides")

    monitor = sub.add_parser("monitor", help="monitoring history: `fluxora monitor ui` starts Evidently's UI on it")
    msub = monitor.add_subparsers(dest="monitor_command", required=True, metavar="ACTION")
    mui = msub.add_parser(
        "ui", help="start Evidently's UI on the monitoring workspace ($FLUXORA_HOME/evidently): the runs over time"
    )
    mui.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    mui.add_argument("--port", type=int, default=8001, help="port (default: 8001; the forecast API has 8000)")
    mui.add_argument("overrides", nargs="*", help="Hydra overrides")

    users = sub.add_parser("users", help="manage API users (for the OAuth2 password flow)")
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    ucreate = usub.add_parser("create", help="create a user; the password is read from stdin or prompted")
    ucreate.add_argument("username")
    ucreate.add_argument("--role", choices=("reader", "admin"), default="reader")
    ucreate.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    ucreate.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. infra=production")

    keys = sub.add_parser("keys", help="manage API keys (X-API-Key)")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kcreate = ksub.add_parser("create", help="create a key; printed once, alone on the last line")
    kcreate.add_argument("--name", default="cli", help="who the key is for")
    kcreate.add_argument("--role", choices=("reader", "admin"), default="reader")
    kcreate.add_argument(
        "--series", action="append", help="limit the key to these series (repeat or comma-separate); default: all"
    )
    kcreate.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. infra=production")
    klist = ksub.add_parser("list", help="list keys (never the keys themselves)")
    klist.add_argument("overrides", nargs="*", help="Hydra overrides")
    krevoke = ksub.add_parser("revoke", help="revoke a key by id")
    krevoke.add_argument("id", type=int)
    krevoke.add_argument("overrides", nargs="*", help="Hydra overrides")

    config = sub.add_parser("config", help="show or export the composed configuration")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = csub.add_parser("show", help="print the composed configuration as YAML")
    show.add_argument("overrides", nargs="*", help="Hydra overrides")
    export = csub.add_parser("export", help="write params.yaml (DVC's view of conf/)")
    export.add_argument("--output", type=Path, help="file to write (default: params.yaml in the project)")
    export.add_argument("--check", action="store_true", help="do not write; exit 1 if the file is out of date")

    deploy = sub.add_parser(
        "deploy", help="serve the scheduled deployments (ingest hourly, train daily, monitor hourly)"
    )
    deploy.add_argument("overrides", nargs="*", help="Hydra overrides used by every scheduled run")

    trigger = sub.add_parser("trigger", help="start a deployed flow now, e.g. `fluxora trigger train model=xgboost`")
    trigger.add_argument("flow", choices=("ingest", "train", "monitor", "weather"))
    trigger.add_argument("overrides", nargs="*", help="Hydra overrides for this run (added to the deployment's)")
    trigger.add_argument("--wait", action="store_true", help="wait for the run to finish and exit with its outcome")
    backtest = sub.add_parser("backtest", help="rolling-origin backtest of the models: leaderboard table + JSON")
    backtest.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. backtest.horizon=48 data=csv")
    backtest.add_argument("--output", type=Path, help="leaderboard JSON (default: $FLUXORA_HOME/reports/)")

    tune = sub.add_parser(
        "tune",
        help="search XGBoost's settings with Optuna on backtest windows before the gate's; print the overrides",
        description="Optuna (TPE, seeded) search of the XGBoost settings in tune.space (model.n_estimators, "
        "max_depth, learning_rate, subsample, colsample_bytree, min_child_weight) on tune.windows backtest "
        "origins that end where the gate's backtest windows begin, so the gate's leaderboard stays out of "
        "sample. Each trial is an MLflow child run of the study's run. The study is kept in "
        "$FLUXORA_HOME/tuning/optuna.db: rerunning the same command (after Ctrl-C, tune.timeout_s, or with a "
        "larger tune.trials) continues it. The best settings go to $FLUXORA_HOME/tuned/xgboost.yaml and are "
        "printed as Hydra overrides on the last line; `fluxora run` does not read that file: pass the overrides.",
        epilog="Examples: `fluxora tune tune.trials=20 train.max_origins=10000`, then "
        "`fluxora run $(fluxora tune --show)`. Settings: conf/tune/default.yaml (trials, timeout_s, metric, "
        "windows, step_hours, seed, space).",
    )
    tune.add_argument(
        "--show",
        action="store_true",
        help="only print the overrides of the last result ($FLUXORA_HOME/tuned/xgboost.yaml); tune nothing",
    )
    tune.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. tune.trials=20 data=csv")

    promote = sub.add_parser("promote", help="make a registered model version the champion")
    promote.add_argument("version", help="model version number")
    promote.add_argument("--reason", default="manual promotion", help="why (kept in the promotion history)")
    promote.add_argument("overrides", nargs="*", help="Hydra overrides")

    rollback = sub.add_parser("rollback", help="move champion back to the version it replaced")
    rollback.add_argument("--reason", default="manual rollback", help="why (kept in the promotion history)")
    rollback.add_argument("overrides", nargs="*", help="Hydra overrides")

    stage = sub.add_parser("stage", help="run one pipeline step with params.yaml (used by `dvc repro`)")
    stage.add_argument("name", choices=STEPS)
    stage.add_argument("--params", type=Path, help="params file (default: params.yaml in the project)")
    stage.add_argument("--home", type=Path, help="FLUXORA_HOME for this step (DVC pins it so outputs match dvc.yaml)")
    return p


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Overrides may come before or after options (`trigger train --wait model=x`): argparse
    alone stops collecting positionals at the first option."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(a.startswith("-") for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args
