"""The deployments' typed parameters (what users change from the Prefect UI or
`prefect deployment run -p`), and how each becomes a Hydra override: conf/ stays the one source
of configuration, the parameters only pick values in it."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from fluxora.config import DURATION_PATTERN, parse_horizon
from fluxora.errors import ConfigError

# The options of conf/model/ (a test checks that they match), so the UI offers a choice.
ModelName = Literal["auto", "neural", "prophet", "ridge", "seasonal_naive", "xgboost"]


def horizon_value(value: object) -> int | str:
    """Steps or a duration, parsed as `train.horizon` is at compose time (ConfigError otherwise);
    the run then checks it against the data's resolution (whole steps, at most a week)."""
    parsed = parse_horizon("horizon", value)
    if isinstance(parsed, int) and parsed < 1:
        raise ConfigError(
            f"invalid configuration: horizon: {parsed} steps (give at least 1, or a duration such as 24h)"
        )
    return parsed


def _horizon(value: object) -> int | str:
    try:
        return horizon_value(value)
    except ConfigError as exc:  # pydantic reports a ValueError as the parameter's error
        raise ValueError(str(exc)) from None


# Steps of the data's resolution (hours at hourly data) or a duration: 24h, 90min, 2d. The
# validator turns digits into steps and names the parameter in its error; the union is the schema
# the Prefect server checks `-p horizon=...` against.
Horizon = Annotated[
    Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=DURATION_PATTERN)],
    BeforeValidator(_horizon),
    Field(description="steps ahead at the data's resolution, or a duration such as 24h or 90min"),
]
SeriesIds = list[Annotated[str, Field(min_length=1)]]


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].strip()


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def as_overrides(
    overrides: list[str] | None,
    *,
    model: str | None = None,
    horizon: int | str | None = None,
    data_path: str | None = None,
    series: list[str] | None = None,
) -> list[str]:
    """`overrides` with the typed parameters that are set appended as Hydra overrides. A typed
    parameter wins over an override of the same key (a deployment's default overrides stay
    defaults); `data_path` selects the `data=csv` or `data=parquet` group by its suffix unless the
    overrides pick a data group themselves."""
    free = list(overrides or [])
    typed: list[str] = []
    if model is not None:
        typed.append(f"model={model}")
    if horizon is not None:
        typed.append(f"train.horizon={horizon_value(horizon)}")
    if data_path is not None and data_path.strip():
        if not any(_key(o) == "data" for o in free):
            suffix = "".join(PurePath(data_path).suffixes[-1:]).lower()
            typed.append(f"data={'parquet' if suffix in ('.parquet', '.pq') else 'csv'}")
        typed.append(f"data.path={_quoted(data_path.strip())}")
    if series is not None:
        if blank := [s for s in series if not s.strip()]:
            raise ConfigError(f"invalid parameter: series: an empty series id ({blank!r})")
        typed.append(f"data.series=[{','.join(_quoted(s.strip()) for s in series)}]")
    replaced = {_key(t) for t in typed}
    return [o for o in free if _key(o) not in replaced] + typed
