"""Typed configuration: Hydra composes `conf/`, this schema checks it.

Two planes: pipeline/experiment parameters live here (Hydra, `conf/`, mirrored to
`params.yaml` for DVC); run-time locations come from the environment (`fluxora.paths`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

from fluxora.errors import ConfigError, first_line

SCHEMA_NAME = "fluxora_schema"


@dataclass
class ColumnsConfig:
    """Column names in the source files, mapped onto the canonical names."""

    series_id: str = "series_id"  # long layout only; wide files have one column per series
    timestamp: str = "timestamp"
    load: str = "load"
    temperature: str = "temperature"  # "" (or a column the files lack): no temperature, see gate.no_weather


@dataclass
class GateConfig:
    """The validation gate: one policy per check, `fail`, `repair`, `quarantine` or `warn`.

    See `fluxora.data.gate` for what each policy does per check. Quarantined rows go to
    `$FLUXORA_HOME/data/quarantine.parquet` with their reason; nothing is dropped silently.
    """

    missing_series_id: str = "quarantine"  # rows with an empty or blank series_id
    duplicates: str = "quarantine"  # keep the first row of a (series, timestamp), quarantine the rest
    bad_timestamps: str = "quarantine"  # unparseable, non-existent or quarantined ambiguous local times
    irregular_steps: str = "quarantine"  # timestamps off the series' grid
    non_numeric: str = "quarantine"  # load text that is not a number
    non_finite: str = "quarantine"  # NaN / ±inf load (the gap is then handled by `gaps`)
    negative: str = "quarantine"
    outliers: str = "repair"  # repair: interpolate, original kept in repairs.parquet
    flat_lines: str = "quarantine"  # a stuck meter: the same value for `flat_line_steps` steps or more
    gaps: str = "repair"  # repair: fill up to `max_fill_steps`; longer gaps drop the older part of the series
    too_short: str = "quarantine"
    missing_weather: str = "repair"  # repair: interpolate temperature gaps in series that have temperature
    no_weather: str = "load_only"  # a series with no temperature at all: load_only (forecast without), quarantine, fail
    max_fill_steps: int = 6
    outlier_threshold: float = 10.0  # robust z (median / 1.4826 MAD of the step-to-step change)
    flat_line_steps: int = 24
    min_series_days: float = 14.0


@dataclass
class WeatherConfig:
    """Temperature joined to load by each series' location (when the load data carry none)."""

    provider: str = ""  # "" (temperature comes with the load data) | open_meteo
    locations: dict[str, str] = field(default_factory=dict)  # series_id -> "lat,lon"
    default_location: str = ""  # "lat,lon" for series not listed


@dataclass
class WeatherForecastConfig:
    """Temperature forecasts as they were issued (docs/data.md): a file, or a provider."""

    path: str = ""  # long CSV/Parquet: series_id, issued_at, target_time, temperature; "" -> none
    provider: str = ""  # "" (none, or the file) | open_meteo (by data.weather locations) | synthetic
    hours: int = 48  # forecast hours kept per origin in the `weather_forecast` feature view
    max_age_hours: int = 36  # a forecast issued longer than this before an origin is stale (not used)
    synthetic_error_c: float = 1.5  # synthetic: error std at 24 h lead (grows with sqrt(lead))
    synthetic_issue_hours: int = 6  # synthetic: a run every this many hours (00, 06, ... UTC)


@dataclass
class EiaConfig:
    """EIA-930 hourly demand (source=eia); the API key is read from $EIA_API_KEY."""

    respondents: list[str] = field(default_factory=list)  # balancing authorities, e.g. [PJM, CISO]
    start: str = ""  # UTC, e.g. 2024-01-01T00
    end: str = ""


@dataclass
class DataConfig:
    """Where the load data comes from. `synthetic` is the built-in, seeded sample; `file` reads CSV/Parquet."""

    source: str = "synthetic"  # synthetic | file | eia
    series: list[str] = field(default_factory=list)  # run on these series ids only ([] = every series)
    n_series: int = 3
    start: str = "2024-01-01"
    days: int = 400
    freq: str = "auto"  # the model's resolution: auto (the data's own; the coarsest if they differ) | h | 30min | 15min
    seed: int = 42
    noise: float = 0.03
    batch_series: int = 200  # ingest, the gate and monitoring hold this many series at a time (0 = all at once)
    # synthetic extras (all off by default)
    resolution: str = "auto"  # source resolution: auto (detected per series) | 15min | 30min | h
    holidays_country: str = "DE"  # public holidays lower synthetic load ("" for none)
    missing_stretches: int = 0  # per series
    outliers: int = 0  # per series
    level_shifts: int = 0  # per series
    # file source
    path: str = ""  # a file, a folder or a glob, relative to the project root
    format: str = "auto"  # auto (by extension) | csv | parquet
    layout: str = "long"  # long | wide (one load column per series)
    delimiter: str = ","
    timezone: str = "UTC"  # zone of naive timestamps; offset-aware ones keep their offset
    ambiguous: str = "infer"  # repeated local hour (fall-back): infer | earliest | latest | quarantine
    nonexistent: str = "quarantine"  # skipped local hour (spring-forward): quarantine | shift_forward
    roots: list[str] = field(default_factory=lambda: ["data"])  # allowed input folders (project-relative)
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    weather: WeatherConfig = field(default_factory=WeatherConfig)
    weather_forecast: WeatherForecastConfig = field(default_factory=WeatherForecastConfig)
    eia: EiaConfig = field(default_factory=EiaConfig)


@dataclass
class FeaturesConfig:
    """State-at-origin features stored in Feast; see `fluxora.features.build`."""

    load_history_hours: int = 168  # one week: covers the same-hour-last-week lag for horizons <= 168
    temp_history_hours: int = 24
    heating_base_c: float = 15.0  # below this, heating load rises (degree-hours)
    cooling_base_c: float = 22.0  # above this, cooling load rises
    feature_service: str = "load_forecast_v4"  # the train/serve contract (feature_repo/definitions.py)
    # Local calendar of the series (one per deployment): hour/day-of-week/holidays are local.
    timezone: str = "UTC"  # IANA name, e.g. Europe/London; UTC hours shift at DST changes
    holiday_country: str = ""  # ISO code for the `holidays` package, e.g. GB; "" = no holidays
    holiday_subdivision: str = ""  # e.g. ENG; "" = national holidays
    series_per_batch: int = 50  # features are built and written this many series at a time (bounds memory)


@dataclass
class ModelChoice:
    """Which forecaster: one model, or `auto` (backtest `candidates`, register the best)."""

    name: str = "xgboost"  # xgboost | ridge | prophet | neural | seasonal_naive | auto
    candidates: list[str] = field(default_factory=lambda: ["xgboost"])  # model=auto backtests these


@dataclass
class XGBoostParams:
    """`model=xgboost`: one global booster for the point forecast, a smaller one for the quantiles."""

    n_estimators: int = 400
    max_depth: int = 6
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    n_jobs: int = 1  # 0: all cores; 1 is fastest on a small shared machine
    seed: int = 0
    quantile_estimators: int = 100  # the quantile (spread) booster: smaller, on a row subsample
    quantile_max_depth: int = 4
    quantile_learning_rate: float = 0.2
    quantile_min_child_weight: float = 200.0  # large leaves: in-sample quantiles overfit (too narrow)
    quantile_max_rows: int = 50_000
    # the point booster fits the load itself (`none`) or the residual of a ridge model on the
    # same rows (`ridge`, with model.ridge_alpha; ridge's forecast is its base margin)
    xgb_base: str = "none"
    early_stopping_rounds: int = 30  # on the calibration hold-out; 0: always n_estimators trees
    reg_lambda: float = 1.0  # L2 penalty on leaf weights


@dataclass
class RidgeParams:
    """`model=ridge`: ridge regression on the design features."""

    ridge_alpha: float = 1.0


@dataclass
class CalibrationParams:
    """Quantile calibration (xgboost, ridge, prophet; see fluxora.models.calibration): the latest
    `calibration_days` of training origins (at most a third of them) are held out, the model is
    fitted on the rest and its quantiles corrected per level and step so that they cover the
    held-out loads as claimed; then it is refitted on everything. 0 = uncalibrated."""

    calibration_days: float = 28.0


@dataclass
class SeasonalNaiveParams:
    """`model=seasonal_naive`: 24 (daily), 168 (weekly) or 0 (the better of the two on training data)."""

    season_hours: int = 0


@dataclass
class ProphetParams:
    """`model=prophet`: one model per series, bounded so backtests stay affordable."""

    prophet_train_days: int = 180
    prophet_changepoint_prior_scale: float = 0.05
    prophet_max_iter: int = 1000


@dataclass
class NeuralParams:
    """`model=neural`: one global Keras MLP across series (TensorFlow), direct multi-horizon, on
    the ridge model's interaction basis of the design rows with a linear skip; quantile heads
    (median plus cumulative softplus offsets, so levels never cross) on pinball loss. Early
    stopping on the latest `neural_validation_days` of training origins; seeded and
    single-threaded per op, so a rerun gives the same model."""

    neural_layers: int = 2  # hidden layers
    neural_units: int = 32  # units per hidden layer
    neural_epochs: int = 30  # at most; early stopping usually ends sooner
    neural_patience: int = 4  # epochs without a better validation loss before stopping
    neural_batch_size: int = 512
    neural_learning_rate: float = 0.0005  # Adam; halved on each plateau of the validation loss
    neural_l2: float = 1e-5  # weight decay of the hidden layers
    neural_validation_days: float = 14.0  # latest training origins held out for early stopping
    neural_max_rows: int = 200_000  # design rows trained on (a seeded sample when there are more)
    neural_threads: int = 1  # TensorFlow intra-op threads (0: all cores); 1 is deterministic and fastest here
    neural_seed: int = 0


@dataclass
class ModelConfig(
    NeuralParams, ProphetParams, SeasonalNaiveParams, CalibrationParams, RidgeParams, XGBoostParams, ModelChoice
):
    """The forecaster and its hyper-parameters: every model's schema in one flat group, because
    `model=auto` and `fluxora backtest` fit several models from the same config. Field order
    (the reverse of the bases) is the order of params.yaml."""


# The settings each model reads (`fluxora config show` shows only the selected model's).
MODEL_SCHEMAS: dict[str, tuple[type, ...]] = {
    "xgboost": (XGBoostParams, RidgeParams, CalibrationParams),  # the point booster corrects ridge
    "ridge": (RidgeParams, CalibrationParams),
    "prophet": (ProphetParams, CalibrationParams),
    "seasonal_naive": (SeasonalNaiveParams,),
    "neural": (NeuralParams, RidgeParams, CalibrationParams),  # the median starts as ridge
}


def model_keys(model: ModelConfig) -> list[str]:
    """The `model.*` keys that `model` (its name; for `auto`, its candidates) reads, in field order."""
    names = model.candidates if model.name == "auto" else [model.name]
    wanted = {f.name for n in names for schema in MODEL_SCHEMAS.get(n, ()) for f in fields(schema)}
    wanted |= {"name", "candidates"} if model.name == "auto" else {"name"}
    return [f.name for f in fields(ModelConfig) if f.name in wanted]


@dataclass
class TrainConfig:
    """Training set, the promotion gate and registration."""

    horizon: int | str = "24h"  # a duration (24h: a day ahead at any resolution) or steps of the model resolution
    origin_stride_hours: int = 3  # forecast origins sampled for training
    max_origins: int = 0  # 0: every origin at the stride; else a seeded uniform sample of this many (large data)
    # With infra=dask the final XGBoost fit runs on the cluster's workers (xgboost.dask) on this
    # many origins, a seeded uniform sample (0: every origin at the stride), instead of max_origins.
    dask_max_origins: int = 0
    min_train_days: int = 28  # of training origins before a backtest window
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])  # 0.5 is always added
    # What the registered model reads for the temperature at target times: `auto` is `issued` (the
    # weather forecast as issued, from data.weather_forecast) when a source is configured, else
    # `persistence` (same hour on the latest observed day); `ex_post`/`forecast` models need
    # `target_temperature` in every request (see docs/models.md).
    weather: str = "auto"
    promotion_metric: str = "mae"  # any overall backtest metric; lower is better
    promotion_margin: float = 0.02  # challenger must be this fraction better than champion and naive
    registered_model_name: str = "fluxora-load-forecaster"
    experiment: str = "fluxora"


@dataclass
class BacktestConfig:
    """Rolling-origin evaluation (`fluxora backtest` and the promotion gate in training)."""

    models: list[str] = field(default_factory=lambda: ["ridge", "xgboost", "prophet", "neural"])  # + naive baselines
    horizon: int | str = 0  # steps or a duration (24h); 0 = train.horizon
    windows: int = 28  # forecast origins, `step_hours` apart, the last one `horizon` before the data ends
    step_hours: int = 24
    cutoffs: list[str] = field(default_factory=list)  # explicit origins (UTC, ISO); replace windows/step
    gap_hours: int = 0  # training targets end this long before each origin (data latency)
    refit: str = "once"  # once: fit before the first origin; every: refit at every origin
    weather: str = "auto"  # auto (as train.weather) | issued | ex_post | forecast | persistence
    weather_noise_c: float = 1.5  # forecast: error std at 24 h lead, growing with sqrt(lead)
    mase_season_hours: int = 24  # MASE scale: in-sample seasonal naive MAE with this season
    seed: int = 0
    plots: bool = True
    plot_series: int = 3  # series shown in the forecast-vs-actual plot


@dataclass
class TuneSpace:
    """`fluxora tune`'s search space: `[low, high]` for each XGBoost setting searched (`model.*`
    of the same name); `[]` keeps the configured value. n_estimators, learning_rate and
    min_child_weight are searched on a log scale."""

    n_estimators: list[int] = field(default_factory=lambda: [100, 1500])
    max_depth: list[int] = field(default_factory=lambda: [3, 10])
    learning_rate: list[float] = field(default_factory=lambda: [0.01, 0.3])
    subsample: list[float] = field(default_factory=lambda: [0.5, 1.0])
    colsample_bytree: list[float] = field(default_factory=lambda: [0.4, 1.0])
    min_child_weight: list[float] = field(default_factory=lambda: [1.0, 100.0])


@dataclass
class TuneConfig:
    """`fluxora tune`: an Optuna (TPE) search of XGBoost's settings on backtest windows that end
    before the gate's first window (see docs/models.md#tuning-xgboost)."""

    trials: int = 30  # finished trials the study should hold; a rerun continues up to this many
    timeout_s: float = 0.0  # stop starting trials after this long (0: no limit)
    metric: str = ""  # an overall backtest metric, lower is better; "" = train.promotion_metric
    windows: int = 14  # tuning origins, `step_hours` apart, the last one's targets ending at the gate's first origin
    step_hours: int = 24
    seed: int = 0  # TPE sampler seed (a resumed study is seeded with seed + trials already in it)
    startup_trials: int = 8  # random trials before TPE models the results
    start_from_config: bool = True  # trial 0 of a new study: the configured model.* values
    study: str = ""  # Optuna study name; "" = xgboost-<hash of the data version and the config>
    space: TuneSpace = field(default_factory=TuneSpace)


@dataclass
class MonitorConfig:
    """Per-series drift judged against each series' own history, realized accuracy of served
    forecasts, retrain guardrails (see docs/monitoring.md)."""

    drift_days: int = 2  # the window judged; short so a change is seen within two days
    reference_weeks: int = 4  # the expected load is fitted on this many weeks before each window
    # Unused since drift is judged against each series' own history; kept so existing overrides compose.
    current_days: int = 7
    reference_days: int = 28
    # Retrain on drift when at least this share of the judged series drifted in load (weather never).
    drift_share_threshold: float = 0.1
    history_windows: int = 20  # earlier windows (back to back) whose statistics calibrate the current one
    min_history_windows: int = 10  # fewer: the series is insufficient data, not tested
    drift_k: float = 5.0  # drift: more than this many robust SDs from the series' own earlier windows ...
    # ... and at least this effect (level, misfit: share of the level; clock: share of error; weather: °C)
    drift_min_effect: dict[str, float] = field(
        default_factory=lambda: {"level": 0.05, "misfit": 0.02, "clock": 0.1, "weather": 2.0}
    )
    report_max_series: int = 20  # series in the Evidently report (drifted first; all are in the JSON)
    retrain_cooldown_hours: float = 24.0
    retrain_min_new_rows: int = 24  # rows since the last retrain trigger
    # Realized accuracy: served forecasts (the API's forecast log) against the actuals that arrived.
    accuracy_days: int = 14  # forecasts served within this many days before the latest actual
    accuracy_min_points: int = 24  # fewer matured points (overall, per series/step/day): insufficient data
    accuracy_interval: list[float] = field(default_factory=lambda: [0.1, 0.9])  # logged quantiles -> coverage
    accuracy_mae_ratio_threshold: float = 1.0  # decay: realized MAE / better seasonal naive MAE above this
    # Alerts: a JSON POST to this URL on load drift, accuracy decay, stale features and refused
    # models; "" sends none. The secret header's value comes from $FLUXORA_WEBHOOK_SECRET, never from here.
    webhook_url: str = ""
    webhook_secret_header: str = ""  # e.g. X-Fluxora-Token; sent only when $FLUXORA_WEBHOOK_SECRET is set
    webhook_timeout_s: float = 5.0  # per attempt
    webhook_retries: int = 2  # more attempts after a transient failure (connection, timeout, 429, 5xx)
    webhook_backoff_s: float = 1.0  # wait before retry n: this x 2^(n-1)
    webhook_dedup_hours: float = 24.0  # the same alert kind and subject is not sent again within this


@dataclass
class ServeConfig:
    """The forecast API. Secrets (the JWT secret) come from the environment, never from here.

    The service's settings (`fluxora.api.settings.ServiceSettings`, also read from `FLUXORA_*`
    variables) take every field but `host` and `port` from here, with its type and default; a
    field's metadata holds what the service checks: bounds (`gt`, `ge`, `le`) and `choices`.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    # local | production (production refuses to start without a strong JWT secret)
    mode: str = field(default="local", metadata={"choices": ("local", "production")})
    # how often the champion alias is checked; a move is served within this; 0: load once, no polling
    poll_interval_s: float = field(default=30.0, metadata={"ge": 0})
    # per registry call; a dead registry must not hang start-up
    registry_timeout_s: float = field(default=5.0, metadata={"gt": 0})
    retry_after_s: int = field(default=30, metadata={"ge": 1})  # Retry-After on 503 (no model) responses
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed; empty: no CORS
    max_body_bytes: int = field(default=1_048_576, metadata={"ge": 1})  # larger request bodies get 413
    rate_limit_per_minute: int = field(default=600, metadata={"ge": 0})  # per API key or user; 0 disables
    # requests a consumer may send at once (in-memory limiter)
    rate_limit_burst: int = field(default=60, metadata={"ge": 1})
    token_ttl_minutes: int = field(default=60, metadata={"ge": 1})  # lifetime of a JWT from /v1/auth/token
    # failed logins (POST /v1/auth/token) allowed per username and per client address within
    # login_window_s; past them every attempt is 429 until the window passes. 0 disables that count
    login_failures_per_user: int = field(default=5, metadata={"ge": 0})
    login_failures_per_address: int = field(default=20, metadata={"ge": 0})
    login_window_s: int = field(default=300, metadata={"ge": 1})
    jwt_audience: str = "fluxora-api"
    # how long a verified API key is trusted without a database read
    key_cache_s: float = field(default=5.0, metadata={"ge": 0})
    # series one POST /v1/forecast may ask for (one online read and one model call for all); more: 422.
    # At most 10,000 (`fluxora.api.schemas.MAX_SERIES_PER_REQUEST`, a body's hard limit)
    max_series_per_request: int = field(default=1000, metadata={"ge": 1, "le": 10_000})
    log_flush_s: float = field(default=0.2, metadata={"gt": 0})  # forecast log: write a batch at least this often
    # computed forecasts kept per (model, state, question); 0: off
    forecast_cache_entries: int = field(default=4096, metadata={"ge": 0})
    # Features older than this (now - origin) are stale: responses say `stale: true`, readiness
    # is `degraded`, metrics count them. Two days: hourly data plus a day of ingest latency. 0: off
    max_feature_age_s: float = field(default=172_800.0, metadata={"ge": 0})
    # Features older than this are refused: 503 for the series. 0 (the default): never refuse
    max_feature_age_hard_s: float = field(default=0.0, metadata={"ge": 0})


@dataclass
class DeployConfig:
    """Prefect deployments served by `fluxora deploy`: cron schedules in a time zone."""

    timezone: str = "UTC"  # IANA name; cron times are local to it, so DST changes are handled
    ingest_cron: str = "5 * * * *"  # hourly, a few minutes after the hour's data lands
    train_cron: str = "30 2 * * *"  # daily, at night
    monitor_cron: str = "20 * * * *"  # hourly, after ingest
    weather_cron: str = "20 5,11,17,23 * * *"  # after the 00/06/12/18 UTC model runs reach Open-Meteo
    io_retries: int = 3  # retries for I/O tasks (ingest, feature materialization, monitoring)
    io_retry_backoff_s: float = 10.0  # base of the exponential backoff between retries


@dataclass
class InfraConfig:
    """Where shared state lives. Empty URLs mean the local default under FLUXORA_HOME.

    `conf/infra/production.yaml` fills these from the environment (secrets and hosts stay out
    of the repo and out of params.yaml's committed defaults).
    """

    name: str = "local"
    mlflow_tracking_uri: str = ""  # "" -> sqlite:///$FLUXORA_HOME/mlflow/mlflow.db
    online_store: str = "sqlite"  # sqlite | redis
    redis_url: str = ""  # Feast online store (online_store=redis) and API rate limits
    feast_registry_url: str = ""  # "" -> file registry; else a SQLAlchemy URL (PostgreSQL)
    database_url: str = ""  # the API's database; "" -> sqlite under FLUXORA_HOME
    # Fan-out of per-series work (backtest fits, Prophet per-series fits, per-series metrics).
    task_runner: str = "serial"  # serial: in-process, no Dask | dask: Prefect's DaskTaskRunner
    dask_address: str = ""  # scheduler of an existing cluster (tcp://host:8786); "" -> a local cluster
    dask_n_workers: int = 2  # local cluster only
    dask_threads_per_worker: int = 1  # local cluster only
    series_per_task: int = 50  # series in one per-series work unit (a task on the cluster)


@dataclass
class FluxoraConfig:
    """The whole configuration tree (`conf/config.yaml`)."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    infra: InfraConfig = field(default_factory=InfraConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """Stable hash of every parameter, for tagging runs. `tune` is left out: how a search
        runs does not change what a training makes (its result reaches training only as
        `model.*` overrides)."""
        tree = self.to_dict()
        tree.pop("tune")
        blob = json.dumps(tree, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


REDACTED = "***"
_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://)(\S*)")  # scheme://, then userinfo@host/path...
_SECRET_QUERY = re.compile(r"\b((?:password|passwd|pwd|secret|token|api_key)=)[^&\s]*", re.IGNORECASE)


def _redact_url(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    userinfo, at, host = rest.rpartition("@")  # the last @: a password may hold one unescaped
    if not at or ":" not in userinfo:
        return match.group(0)
    return f"{scheme}{userinfo.split(':', 1)[0]}:{REDACTED}@{host}"


def redact(value: Any) -> Any:
    """`value` with every password in it replaced by `***`: the password of each URL
    (`postgresql://user:***@host/db`, `redis://:***@host:6379/0`) and `password=`/`token=`-style
    query values. Works on a config, a dict (e.g. `cfg.to_dict()`), a list or a string, and
    returns a copy. Everything that prints or logs a configuration goes through it."""
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: redact(getattr(value, f.name)) for f in fields(value)})
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str) and ("://" in value or "=" in value):
        return _SECRET_QUERY.sub(rf"\1{REDACTED}", _URL.sub(_redact_url, value))
    return value


def register_schema() -> None:
    """Make `conf/config.yaml`'s schema entry known to Hydra (also done for DVC's own
    composition by `hydra_plugins/fluxora_schema`)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=FluxoraConfig)


_register_schema = register_schema


def conf_dir() -> Path:
    from fluxora.paths import project_root

    return project_root() / "conf"


def compose(overrides: list[str] | tuple[str, ...] = (), config_dir: Path | None = None) -> FluxoraConfig:
    """Compose `conf/` with Hydra override strings into a checked `FluxoraConfig`.

    Raises ConfigError with a one-line message naming the offending key.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    _register_schema()
    _check_grammar(overrides)
    directory = (config_dir or conf_dir()).resolve()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        # Hydra lets `+key=value` add a key the schema lacks, and to_object would drop it silently.
        if unknown := _unknown_keys(OmegaConf.to_container(cfg, resolve=False), FluxoraConfig):
            raise ConfigError(_unknown_key_message(unknown[0], overrides))
        obj = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra/OmegaConf raise many types; all become one clear line
        raise ConfigError(_explain(exc, overrides, directory)) from None
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(obj, FluxoraConfig)
    _check_horizons(obj)
    return obj


# A duration as horizons take it (also the JSON-schema pattern of the deployments' parameter).
DURATION_PATTERN = r"^\s*\d+\s*(min|minutes?|m|h|hours?|d|days?)\s*$"
_HORIZON = re.compile(rf"^\s*\d+\s*$|{DURATION_PATTERN}", re.IGNORECASE)


def parse_horizon(key: str, value: object) -> int | str:
    """A horizon as `train.horizon` takes it: steps (an int, or digits: returned as an int) or a
    duration such as "24h" or "90min" (returned stripped). Whether a duration is whole steps is
    decided later by the data's or the model's resolution (`fluxora.data.resolution`). ConfigError
    naming `key` otherwise. Used at compose time, by the deployments' parameters and the CLI."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _HORIZON.match(value):
        text = value.strip()
        return int(text) if text.isdigit() else text
    raise ConfigError(
        f"invalid configuration: {key}: {value!r} is neither a number of steps nor a duration (e.g. 24, 24h, 90min)"
    )


def _check_horizons(cfg: FluxoraConfig) -> None:
    """`train.horizon` and `backtest.horizon` are steps (an integer) or a duration (24h, 90min)."""
    for key, value in (("train.horizon", cfg.train.horizon), ("backtest.horizon", cfg.backtest.horizon)):
        parse_horizon(key, value)


def from_params(path: Path) -> FluxoraConfig:
    """Load and check a `params.yaml` (DVC's view of the config) against the schema."""
    from omegaconf import OmegaConf

    if not path.is_file():
        raise ConfigError(f"params file not found: {path} (generate it with `fluxora config export`)")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(FluxoraConfig), OmegaConf.load(path))
        obj = OmegaConf.to_object(merged)
    except Exception as exc:
        raise ConfigError(f"{path}: {_explain(exc, ())}") from None
    assert isinstance(obj, FluxoraConfig)
    _check_horizons(obj)
    return obj


def to_yaml(cfg: FluxoraConfig) -> str:
    """The `params.yaml` text for a config: byte for byte what DVC's Hydra composition writes
    (`dvc exp run`), so an experiment on unchanged `conf/` leaves the file as committed."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_view_yaml(cfg: FluxoraConfig) -> str:
    """What `fluxora config show` prints: the composed config with only the selected model's
    settings (plus any other model's setting moved off its default, since `fluxora backtest`
    fits `backtest.models` from the same group), under a header that says it is a view."""
    from omegaconf import OmegaConf

    tree = cfg.to_dict()
    shown = set(model_keys(cfg.model))
    default = asdict(ModelConfig())
    tree["model"] = {k: v for k, v in tree["model"].items() if k in shown or (k != "candidates" and v != default[k])}
    who = ", ".join(cfg.model.candidates) if cfg.model.name == "auto" else cfg.model.name
    header = (
        "# A view of the composed configuration (conf/ + overrides); nothing reads this text back.\n"
        f"# model: the settings {who} reads; another model's appear only when off their default\n"
        "# (`fluxora config show model=NAME` shows that model's). To change anything, edit conf/ or\n"
        "# pass overrides; `fluxora config export` writes params.yaml for DVC.\n"
    )
    return header + OmegaConf.to_yaml(OmegaConf.create(tree))


def _check_grammar(overrides: list[str] | tuple[str, ...]) -> None:
    """Each override on its own against Hydra's grammar, so the message can name the bad one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except Exception:  # Hydra's OverrideParseException, with a multi-line caret drawing
            key = override.lstrip("+~").split("=", 1)[0]
            if "=" not in override and not override.startswith("~"):
                why = "expected key=value"
            else:
                why = "quote a value with special characters for Hydra, e.g. \"data.delimiter=';'\""
            raise ConfigError(f"invalid configuration: {key}: not a valid override {override!r}; {why}") from None


_KEY_PATTERNS = (
    re.compile(r"Could not override '([^']+)'"),
    re.compile(r"full_key: ([\w.]+)"),
    re.compile(r"Could not find '([^']+)'"),
    re.compile(r"Error parsing override '([^']+)'"),
    re.compile(r"[Kk]ey '([^']+)' not in"),
)


def _schema_of(schema: type, name: str) -> Any:
    """The resolved type of field `name` of dataclass `schema`, or None when there is no such field."""
    return get_type_hints(schema).get(name) if name in {f.name for f in fields(schema)} else None


def _unknown_keys(node: Any, schema: type, prefix: str = "") -> list[str]:
    """Dotted keys in the composed tree `node` that the dataclass `schema` does not declare."""
    out: list[str] = []
    for key, value in node.items() if isinstance(node, dict) else ():
        hint = _schema_of(schema, str(key))
        if hint is None:
            out.append(f"{prefix}{key}")
        elif isinstance(hint, type) and is_dataclass(hint):  # dict-typed fields (data.weather.locations): any key
            out.extend(_unknown_keys(value, hint, f"{prefix}{key}."))
    return out


def _suggest(key: str) -> str:
    """`; did you mean …?` with the closest valid names at the first unknown part of dotted `key`,
    or the valid names there when none is close."""
    schema: Any = FluxoraConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not (isinstance(schema, type) and is_dataclass(schema)):
            return ""
        hint = _schema_of(schema, part)
        if hint is None:
            names = [f.name for f in fields(schema)]
            parent = ".".join(parts[:i])
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
            full = [f"{parent}.{n}" if parent else n for n in close]
            if full:
                return f"; did you mean {' or '.join(full)}?"
            return f"; valid keys {'under ' + parent if parent else 'at the top'}: {', '.join(names)}"
        schema = hint
    return ""


def _group_options(directory: Path, group: str) -> list[str]:
    folder = directory / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _override_for(key: str, overrides: list[str] | tuple[str, ...]) -> str:
    # A group override like `model=foo` reports the group; an override like `train.x=1` the full key.
    override = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] in (key, key.split("/")[0])), None)
    return f" (override {override!r})" if override else ""


def _unknown_key_message(key: str, overrides: list[str] | tuple[str, ...]) -> str:
    return f"invalid configuration: {key}: unknown key{_override_for(key, overrides)}{_suggest(key)}"


def _explain(exc: BaseException, overrides: list[str] | tuple[str, ...], directory: Path | None = None) -> str:
    """Turn a Hydra/OmegaConf exception into one line that names the key."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " ".join(str(e) for e in chain)
    key = None
    for pattern in _KEY_PATTERNS:
        if m := pattern.search(text):
            key = m.group(1)
            break
    detail = first_line(chain[-1])
    if "Value '" in text and "could not be converted" in text:
        m = re.search(r"Value '([^']*)' (?:of type '\w+' )?could not be converted to (\w+)", text)
        if m:
            detail = f"value {m.group(1)!r} is not a valid {m.group(2)}"
    elif "not in" in text or "Could not override" in text:
        detail = "unknown key"
    elif "Could not find" in text:
        detail = "unknown config group option"
    elif "Error parsing override" in text:
        detail = "not a valid override, expected key=value"
    if key is None:
        return f"invalid configuration: {detail}"
    hint = ""
    if detail == "unknown key":
        hint = _suggest(key)
    elif detail == "unknown config group option" and directory is not None and "/" in key:
        group, option = key.split("/", 1)
        options = _group_options(directory, group)
        close = difflib.get_close_matches(option, options, n=1, cutoff=0.6)
        listed = f"available: {', '.join(options)}"
        hint = f"; did you mean {group}={close[0]}? {listed.capitalize()}" if close else f"; {listed}"
    return f"invalid configuration: {key}: {detail}{_override_for(key, overrides)}{hint}"
