"""Tune: an Optuna (TPE) search of XGBoost's settings on backtest windows that end where the
gate's begin, one MLflow child run per trial under the study's run, the best written to
`$FLUXORA_HOME/tuned/xgboost.yaml` with the overrides that give it to `fluxora run`.

The study lives in `$FLUXORA_HOME/tuning/optuna.db` (SQLite): a rerun (after Ctrl-C, a timeout,
or with more `tune.trials`) continues it. Nothing here changes what `fluxora run` does."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from fluxora import registry
from fluxora.config import FluxoraConfig, XGBoostParams
from fluxora.data import io
from fluxora.errors import InsufficientDataError
from fluxora.paths import Home
from fluxora.steps.base import StepResult
from fluxora.steps.features import panel as stored_panel
from fluxora.steps.train import training_data

_log = logging.getLogger(__name__)

RUN_ATTR = "mlflow_run_id"  # study attribute: the parent run every trial nests under
CONFIGURED_ATTR = "configured"  # trial attribute: the trial scored the configured settings


@dataclass(frozen=True)
class TuneResult(StepResult):
    step = "tune"
    study: str
    metric: str
    value: float  # the best trial's metric on the tuning windows
    configured_value: float | None  # the configured settings' on the same windows (trial 0), if scored
    best_trial: int
    trials: int  # finished trials in the study
    params: dict[str, Any]  # the best trial's settings (model.*)
    overrides: list[str] = field(default_factory=list)  # Hydra overrides for `fluxora run`
    output: str = ""  # the result file
    run_id: str = ""  # the study's MLflow run
    interrupted: bool = False  # Ctrl-C: the finished trials are kept, a rerun continues


def tune(cfg: FluxoraConfig, home: Home, progress: Callable[[str], None] | None = None) -> TuneResult:
    """Search XGBoost's settings (`tune.space`) for `tune.trials` finished trials on
    `tune.windows` backtest origins before the gate's first (see `models.tuning.windows`), each
    scored by `tune.metric` and logged as an MLflow child run; write the best and return it.
    Ctrl-C stops at once and keeps the trials that finished (the result says `interrupted`)."""
    import optuna

    from fluxora.models import backtest as bt
    from fluxora.models import tuning

    say = progress or _log.info
    metric = tuning.check(cfg.tune, cfg.train.promotion_metric)
    dims = tuning.dimensions(cfg.tune.space)
    panel = stored_panel(home)
    gate = bt.resolve(cfg, panel, weather=cfg.train.weather, horizon=cfg.train.horizon)
    spec = tuning.windows(gate, panel, cfg.tune.windows, cfg.tune.step_hours)
    data_version, inputs = training_data(home)
    name = cfg.tune.study or study_name(cfg, data_version)
    # Each finished trial is reported below, once; a Ctrl-C is reported by the command, without
    # Optuna's warning and traceback for the trial it cut short.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _study(cfg, home, name)
    settings = _settings(cfg, metric, spec, gate, home)
    run_id = registry.start_tuning(home, cfg, name, settings, inputs, str(study.user_attrs.get(RUN_ATTR, "")))
    study.set_user_attr(RUN_ATTR, run_id)
    done = _finished(study)
    if not study.trials and cfg.tune.start_from_config:
        start = tuning.configured(cfg.model, dims)
        if start is None:
            say("tune: the configured model.* values lie outside tune.space; trial 0 is sampled")
        else:
            study.enqueue_trial(start, user_attrs={CONFIGURED_ATTR: True})
    remaining = cfg.tune.trials - len(done)
    say(
        f"tune: study {name}: {len(done)} finished trial(s), {max(remaining, 0)} to run; {metric} on "
        f"{len(spec.origins)} windows {_day(spec.origins[0])} .. {_day(spec.origins[-1])} "
        f"(the gate's start {_day(gate.origins[0])})"
    )

    def objective(trial: Any) -> float:
        params = {d.name: d.suggest(trial) for d in dims}
        trial.set_user_attr("params", params)
        try:
            scores = tuning.score(panel, tuning.with_params(cfg, params, metric), spec)
        except InsufficientDataError as exc:
            raise InsufficientDataError(
                f"{exc}; the tuning windows lie before the gate's: also lower tune.windows or tune.step_hours"
            ) from None
        trial.set_user_attr("scores", scores)
        trial.set_user_attr("run_id", registry.log_trial(home, run_id, trial.number, params, scores))
        return float(scores[metric])

    def report(study: Any, trial: Any) -> None:
        finished = len(_finished(study))
        if trial.state != optuna.trial.TrialState.COMPLETE:
            say(f"tune: trial #{trial.number} {trial.state.name.lower()}")
            return
        best = study.best_trial
        shown = " ".join(f"{k}={v}" for k, v in trial.user_attrs["params"].items())
        say(
            f"tune: trial {finished}/{cfg.tune.trials} (#{trial.number}) {metric} {trial.value:.5g} ({shown}); "
            f"best {best.value:.5g} (#{best.number})"
        )

    interrupted = False
    if remaining > 0:
        try:
            study.optimize(
                objective, n_trials=remaining, timeout=cfg.tune.timeout_s or None, callbacks=[report], catch=()
            )
        except KeyboardInterrupt:
            interrupted = True  # Optuna marked the running trial failed; the finished ones are stored
        except Exception:
            registry.finish_tuning(home, run_id, None, len(_finished(study)), [], "FAILED")
            raise
    done = _finished(study)
    if not done:
        registry.finish_tuning(home, run_id, None, 0, [], "KILLED" if interrupted else "FAILED")
        if interrupted:
            raise KeyboardInterrupt
        raise InsufficientDataError(f"tune: no trial of study {name} finished")
    result = _result(study, name, metric, cfg, home, run_id, interrupted)
    doc = _document(result, cfg, spec, gate, home, data_version)
    io.atomic_write_text(home.tuned(tuning.MODEL), doc)
    best = {"metric": metric, "value": result.value, "params": result.params, "trial": result.best_trial}
    registry.finish_tuning(
        home, run_id, best, result.trials, [home.tuned(tuning.MODEL)], "KILLED" if interrupted else "FINISHED"
    )
    return result


def study_name(cfg: FluxoraConfig, data_version: str) -> str:
    """`xgboost-<hash>` of the data version and every setting but how long the search runs
    (`tune.trials`, `tune.timeout_s`): other data or settings are another study."""
    tree = cfg.to_dict()
    for key in ("trials", "timeout_s", "study"):
        tree["tune"].pop(key)
    blob = json.dumps([data_version, tree], sort_keys=True, default=str)
    return f"xgboost-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _study(cfg: FluxoraConfig, home: Home, name: str) -> Any:
    """The study from the home's storage, made if new. TPE is seeded with `tune.seed` plus the
    trials already in the study, so a resumed study does not repeat its first samples."""
    import optuna

    home.tuning_db.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # multivariate TPE is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            storage=f"sqlite:///{home.tuning_db}", study_name=name, direction="minimize", load_if_exists=True
        )
        study.sampler = optuna.samplers.TPESampler(
            seed=cfg.tune.seed + len(study.trials), n_startup_trials=cfg.tune.startup_trials, multivariate=True
        )
    return study


def _finished(study: Any) -> list[Any]:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and math.isfinite(t.value)]


def _result(
    study: Any, name: str, metric: str, cfg: FluxoraConfig, home: Home, run_id: str, interrupted: bool
) -> TuneResult:
    from fluxora.models import tuning

    done = _finished(study)
    best = min(done, key=lambda t: (t.value, t.number))
    configured = next((t.value for t in done if t.user_attrs.get(CONFIGURED_ATTR)), None)
    params = dict(best.user_attrs["params"])
    return TuneResult(
        study=name,
        metric=metric,
        value=float(best.value),
        configured_value=None if configured is None else float(configured),
        best_trial=best.number,
        trials=len(done),
        params=params,
        overrides=tuning.overrides(params),
        output=str(home.tuned(tuning.MODEL)),
        run_id=run_id,
        interrupted=interrupted,
    )


def _settings(cfg: FluxoraConfig, metric: str, spec: Any, gate: Any, home: Home) -> dict[str, Any]:
    """The parent run's parameters: what the study is (not how long it runs)."""
    t = cfg.tune
    searched = {f.name for f in fields(t.space) if getattr(t.space, f.name)}
    return {
        "tune": {
            "metric": metric,
            "windows": len(spec.origins),
            "step_hours": t.step_hours,
            "first_origin": _day(spec.origins[0]),
            "last_origin": _day(spec.origins[-1]),
            "gate_first_origin": _day(gate.origins[0]),
            "seed": t.seed,
            "startup_trials": t.startup_trials,
            "start_from_config": t.start_from_config,
            "storage": str(home.tuning_db),
            "space": {name: list(getattr(t.space, name)) for name in sorted(searched)},
        },
        "backtest": {"horizon": spec.horizon, "weather": spec.weather, "refit": spec.refit},
        "model": {f.name: getattr(cfg.model, f.name) for f in fields(XGBoostParams) if f.name not in searched},
    }


def _document(result: TuneResult, cfg: FluxoraConfig, spec: Any, gate: Any, home: Home, data_version: str) -> str:
    """`tuned/xgboost.yaml`: the best settings, their overrides and where they come from."""
    header = (
        f"# Written by `fluxora tune` (study {result.study}): XGBoost's best settings on the tuning windows.\n"
        "# Nothing reads this file by itself. To use them, pass the overrides:\n"
        f"#   fluxora run {' '.join(result.overrides)}\n"
        "# or `fluxora run $(fluxora tune --show)`.\n"
    )
    body = {
        "model": "xgboost",
        "params": result.params,
        "overrides": result.overrides,
        "metric": result.metric,
        "value": result.value,
        "configured_value": result.configured_value,
        "best_trial": result.best_trial,
        "trials": result.trials,
        "interrupted": result.interrupted,
        "study": result.study,
        "storage": str(home.tuning_db),
        "mlflow_run_id": result.run_id,
        "data_version": data_version,
        "windows": {
            "origins": len(spec.origins),
            "step_hours": cfg.tune.step_hours,
            "first": _day(spec.origins[0]),
            "last": _day(spec.origins[-1]),
            "gate_first_origin": _day(gate.origins[0]),
            "horizon_steps": spec.horizon,
            "weather": spec.weather,
        },
    }
    return header + yaml.safe_dump(body, sort_keys=False)


def _day(origin: Any) -> str:
    return str(origin.astype("datetime64[m]")) + "Z"
