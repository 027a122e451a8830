"""The `fluxora` command. Thin: parse arguments, set up the environment, call the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from fluxora.errors import ConfigError, FluxoraError

STEPS = ("ingest", "validate", "features", "train", "monitor")
EXIT_ERROR, EXIT_CONFIG = 1, 2


def _parser() -> argparse.ArgumentParser:
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
    serve.add_argument("overrides", nargs="*", help="Hydra overrides")

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
    trigger.add_argument("flow", choices=("ingest", "train", "monitor"))
    trigger.add_argument("overrides", nargs="*", help="Hydra overrides for this run (added to the deployment's)")
    trigger.add_argument("--wait", action="store_true", help="wait for the run to finish and exit with its outcome")
    backtest = sub.add_parser("backtest", help="rolling-origin backtest of the models: leaderboard table + JSON")
    backtest.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. backtest.horizon=48 data=csv")
    backtest.add_argument("--output", type=Path, help="leaderboard JSON (default: $FLUXORA_HOME/reports/)")

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


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Overrides may come before or after options (`trigger train --wait model=x`): argparse
    alone stops collecting positionals at the first option."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(a.startswith("-") for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        handler = {
            "run": _run,
            "status": _status,
            "serve": _serve,
            "config": _config,
            "stage": _stage,
            "deploy": _deploy,
            "trigger": _trigger,
            "backtest": _backtest,
            "promote": _promote,
            "rollback": _rollback,
            "users": _users,
            "keys": _keys,
        }
        return handler[args.command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FluxoraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _prepare_runtime(cfg: Any) -> Any:
    """FLUXORA_HOME ready, bound to the configured MLflow tracking server (if any)."""
    from fluxora.runtime import prepare

    return prepare(tracking_uri=cfg.infra.mlflow_tracking_uri)


def _run(args: argparse.Namespace) -> int:
    from fluxora.config import compose

    cfg = compose(args.overrides)  # fail fast on a bad override, before anything is written
    home = _prepare_runtime(cfg)
    started = time.perf_counter()
    print(f"fluxora run: FLUXORA_HOME={home.root}", flush=True)
    from flows.pipeline import pipeline_flow

    state = pipeline_flow(overrides=list(args.overrides), return_state=True)
    if not state.is_completed():
        exc = _flow_exception(state)
        if isinstance(exc, FluxoraError):
            raise exc
        print(f"error: pipeline failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    results = state.result()
    _print_summary(results, cfg, home, time.perf_counter() - started)
    return 0


def _flow_exception(state: Any) -> BaseException:
    try:
        state.result()
    except BaseException as exc:  # the flow's own exception, re-raised by Prefect
        return exc
    return RuntimeError(f"flow ended in state {state.type}")


def _print_summary(results: dict[str, Any], cfg: Any, home: Any, seconds: float) -> None:
    train, drift = results["train"], results["monitor"]
    m, model = train["metrics"], train["model"]
    alias = "champion" if model["champion"] else "challenger (champion unchanged)"
    print()
    print(f"Fluxora run finished in {seconds:.0f} s")
    print(
        f"  data      {results['validate']['rows']} rows, {results['validate']['series']} series, "
        f"{results['validate']['start']} .. {results['validate']['end']}"
    )
    print(
        f"  features  {results['features']['rows']} origin states, online store materialized until "
        f"{results['features']['materialized_until']}"
    )
    print(f"  model     {model['name']} version {model['version']} -> {alias}")
    if not model.get("created", True):
        print("            (already registered from the same data and config: no new version)")
    print(f"            gate: {model['reason']}")
    print(
        f"            backtest MAE {m['mae']:.3f} vs seasonal naive daily {m['naive_daily_mae']:.3f} / "
        f"weekly {m['naive_weekly_mae']:.3f}  (skill {m['skill_mae']:+.1%})"
        if "skill_mae" in m
        else f"            backtest metrics: {', '.join(f'{k} {v:.4g}' for k, v in m.items() if '.' not in k)}"
    )
    if "mape" in m and "naive_daily_mape" in m:
        print(
            f"            backtest MAPE {m['mape']:.2f}% vs naive daily {m['naive_daily_mape']:.2f}% / "
            f"weekly {m['naive_weekly_mape']:.2f}%"
        )
    print(
        f"  drift     {'DRIFT' if drift['drifted'] else 'no drift'} (share {drift['drift_share']:.2f}); "
        f"report {drift['html']}"
    )
    if acc := drift.get("accuracy"):
        p = acc["points"]
        print(
            f"  accuracy  realized MAE {acc['mae']:.3f} on {p['matured']} matured points ({p['pending']} pending)"
            if acc["status"] == "ok"
            else f"  accuracy  {acc['reason']}"
        )
    print()
    print("Next:")
    print(f"  mlflow ui --backend-store-uri {home.mlflow_tracking_uri}   # browse runs and the registry")
    print("  make serve                                                   # or: fluxora serve")
    print("  fluxora status")


def _status(args: argparse.Namespace) -> int:
    from fluxora.config import compose
    from fluxora.status import collect, render

    cfg = compose(args.overrides)
    home = _prepare_runtime(cfg)
    report = collect(cfg, home)
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fluxora.api.app import create_app

    settings = _service_settings(args.overrides)
    app = create_app(settings)  # refuses an unsafe production configuration before binding
    cfg = _composed(args.overrides)
    host, port = args.host or cfg.serve.host, args.port or cfg.serve.port
    print(f"fluxora serve: http://{host}:{port}  (docs at /docs, model {settings.model_name}@champion)", flush=True)
    print("  every /v1 route needs a key; create one with:  fluxora keys create --role admin", flush=True)
    print(f"  then:  curl -H 'X-API-Key: <key>' 'http://{host}:{port}/v1/forecast?series_id=series_000'", flush=True)
    _access_log_to_stdout()
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)  # ours is structured JSON
    return 0


def _access_log_to_stdout() -> None:
    import logging

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))  # each record is already one JSON object
    access = logging.getLogger("fluxora.api.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def _composed(overrides: list[str]) -> Any:
    from fluxora.config import compose

    return compose(overrides)


def _service_settings(overrides: list[str]) -> Any:
    from fluxora.api.settings import ServiceSettings

    cfg = _composed(overrides)
    return ServiceSettings.from_config(cfg, _prepare_runtime(cfg))


def _api_sessions(overrides: list[str]) -> Any:
    from fluxora.api import db

    engine = db.make_engine(_service_settings(overrides).sqlalchemy_url)
    db.migrate(engine)
    return db.sessions(engine)


def _users(args: argparse.Namespace) -> int:
    import getpass

    from fluxora.api.auth import create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: passwords differ", file=sys.stderr)
            return EXIT_ERROR
    with _api_sessions(args.overrides)() as session:
        try:
            user = create_user(session, args.username, password, args.role)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        print(f"created user {user.username!r} with role {user.role}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from fluxora.api import auth
    from fluxora.api.db import ApiKey

    with _api_sessions(args.overrides)() as session:
        if args.keys_command == "create":
            series = [s.strip() for item in args.series for s in item.split(",") if s.strip()] if args.series else None
            try:
                row, key = auth.create_key(session, args.name, args.role, series)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_ERROR
            scope = ", ".join(row.series) if row.series else "all series"
            print(f"created key id {row.id} ({row.name}, role {row.role}, {scope}); it is shown only now:")
            print(key)
        elif args.keys_command == "list":
            for r in session.scalars(select(ApiKey).order_by(ApiKey.id)):
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.id:>4}  flx_{r.prefix}_…  {r.role:<6}  {r.name}  {r.series or 'all series'}  {state}")
        else:
            if auth.revoke_key(session, args.id) is None:
                print(f"error: no active key with id {args.id}", file=sys.stderr)
                return EXIT_ERROR
            print(f"revoked key {args.id}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from fluxora.config import compose, to_yaml
    from fluxora.paths import project_root

    if args.config_command == "show":
        print(to_yaml(compose(args.overrides)), end="")
        return 0
    text = to_yaml(compose([]))
    target = args.output or project_root() / "params.yaml"
    if args.check:
        current = target.read_text() if target.is_file() else ""
        if current != text:
            print(f"{target} is out of date with conf/; run `fluxora config export`", file=sys.stderr)
            return EXIT_ERROR
        print(f"{target} is up to date")
        return 0
    from fluxora.data.io import atomic_write_text

    atomic_write_text(target, text)
    print(f"wrote {target}")
    return 0


DEFAULT_PREFECT_API = "http://127.0.0.1:4200/api"


def _prefect_server() -> str:
    """The Prefect API that deployments live on; a clear error if nothing answers there."""
    import httpx

    url = os.environ.setdefault("PREFECT_API_URL", DEFAULT_PREFECT_API)
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        raise FluxoraError(
            f"no Prefect server answers at {url}; start one with `make prefect-server` or set PREFECT_API_URL"
        ) from None
    return url


def _deploy(args: argparse.Namespace) -> int:
    from fluxora.config import compose

    cfg = compose(args.overrides)
    _prepare_runtime(cfg)
    url = _prefect_server()
    from flows.deployments import DEPLOYMENTS, serve

    print(f"fluxora deploy: serving {', '.join(DEPLOYMENTS.values())} on {url} (Ctrl+C stops)", flush=True)
    serve(cfg, list(args.overrides))
    return 0


def _trigger(args: argparse.Namespace) -> int:
    from fluxora.config import compose

    _prepare_runtime(compose(args.overrides))  # a bad override fails here, not in a worker later
    _prefect_server()
    from prefect import get_client
    from prefect.deployments import run_deployment

    from flows.deployments import DEPLOYMENTS

    name = DEPLOYMENTS[args.flow]
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except Exception:
            raise FluxoraError(f"deployment {name!r} not found; start `fluxora deploy` first") from None
    overrides = [*(deployment.parameters or {}).get("overrides", []), *args.overrides]
    run = cast(Any, run_deployment(name, parameters={"overrides": overrides}, timeout=None if args.wait else 0))
    print(f"{name}: flow run {run.name} ({run.id}) {run.state.name if run.state else 'scheduled'}")
    if args.wait and not (run.state and run.state.is_completed()):
        return EXIT_ERROR
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _backtest(args: argparse.Namespace) -> int:
    from flows.fanout import fan_out
    from fluxora import pipeline
    from fluxora.config import compose

    cfg = compose(args.overrides)
    home = _prepare_runtime(cfg)
    started = time.perf_counter()
    for step in (pipeline.ingest, pipeline.validate):  # the same data path as `fluxora run`
        _progress(f"{step.__name__}: {step(cfg, home).outputs}")
    with fan_out(cfg.infra) as per_series:  # infra=dask: backtest units on Dask, as in `fluxora run`
        result = pipeline.backtest(cfg, home, args.output, progress=_progress, fan_out=per_series)
    print(result.outputs["table"])
    print(
        f"leaderboard {result.outputs['leaderboard']}  (MLflow run {result.outputs['run_id']}, "
        f"{time.perf_counter() - started:.0f} s)"
    )
    return 0


def _promote(args: argparse.Namespace) -> int:
    from fluxora import registry
    from fluxora.config import compose

    cfg = compose(args.overrides)
    home = _prepare_runtime(cfg)
    record = registry.promote(home, cfg.train.registered_model_name, args.version, args.reason)
    print(f"champion: v{record['from'] or '-'} -> v{record['to']} ({record['why']}, by {record['who']})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from fluxora import registry
    from fluxora.config import compose

    cfg = compose(args.overrides)
    home = _prepare_runtime(cfg)
    record = registry.rollback(home, cfg.train.registered_model_name, args.reason)
    print(f"champion: v{record['from']} -> v{record['to']} ({record['why']}, by {record['who']})")
    return 0


def _stage(args: argparse.Namespace) -> int:
    from fluxora import pipeline
    from fluxora.config import from_params
    from fluxora.paths import project_root

    cfg = from_params(args.params or project_root() / "params.yaml")
    if args.home:
        os.environ["FLUXORA_HOME"] = str(args.home.resolve())
    home = _prepare_runtime(cfg)
    result = getattr(pipeline, args.name)(cfg, home)
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
