"""The gate's working frame: series ids as categorical codes, instants as int64 nanoseconds.

Checks, repairs and the report share these helpers and the two bookkeeping columns the gate
adds to each row (`ROW`: the input row number, -1 for an inserted gap row; `REPAIRED`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fluxora.data.resolution import HOURLY, Resolution
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE
from fluxora.errors import ConfigError

CHECK = "check"  # quarantine and repairs files: the check that moved or changed the row
REASON = "reason"  # quarantine file: why
ROW = "_row"
REPAIRED = "_repaired"


def extra_columns(raw: pd.DataFrame) -> list[str]:
    """Columns beyond the canonical ones (extra numeric covariates), in input order."""
    return [c for c in raw.columns if c not in (SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE, ISSUE)]


def ns(stamps: pd.Series) -> np.ndarray:
    """UTC instants as int64 nanoseconds."""
    return stamps.to_numpy(dtype="datetime64[ns]").view("int64")


def as_category(ids: pd.Series) -> pd.Series:
    """Series ids as a categorical of strings, categories in string order (so code order = id order)."""
    cat = ids if isinstance(ids.dtype, pd.CategoricalDtype) else ids.astype("category")
    names = cat.cat.categories.astype(str)
    if not names.is_unique:  # e.g. 1 and "1": compare as text
        cat = ids.astype(str).astype("category")
        names = cat.cat.categories
    cat = cat.cat.rename_categories(list(names))
    return cat.cat.reorder_categories(sorted(names))


def from_codes(codes: np.ndarray, like: pd.DataFrame) -> pd.Categorical:
    """Series ids from codes, with the categories of `like`."""
    return pd.Categorical.from_codes(codes, categories=like[SERIES_ID].cat.categories)


def codes_of(df: pd.DataFrame) -> np.ndarray:
    return np.asarray(df[SERIES_ID].cat.codes.to_numpy(), dtype=np.int64)


def same_series(df: pd.DataFrame) -> np.ndarray:
    """True where a row continues the series of the row before it (data sorted by series, time)."""
    ids = df[SERIES_ID]
    sid = codes_of(df) if isinstance(ids.dtype, pd.CategoricalDtype) else ids.to_numpy()
    same = np.zeros(len(df), dtype=bool)
    same[1:] = sid[1:] == sid[:-1]
    return same


def first_series(df: pd.DataFrame, mask: np.ndarray, limit: int = 10) -> list[str]:
    return [str(s) for s in pd.unique(df.loc[mask, SERIES_ID])[:limit]]


def sort_by_series(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in (series, time) order."""
    order = np.lexsort((ns(df[TIMESTAMP]), codes_of(df)))
    return df.iloc[order].reset_index(drop=True)


def step_ns(freq: str) -> int:
    try:
        return int(pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        message = f"invalid configuration: not a fixed resolution: {freq!r} (use e.g. 15min, 30min, h)"
        raise ConfigError(message) from None


def freq_name(step: int) -> str:
    minutes = step // 60_000_000_000
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}min"


def data_resolution(data: pd.DataFrame) -> Resolution:
    """The model resolution of validated data (regular per series, as the gate writes it): the
    step between a series' first two rows; hourly when no series has two."""
    if data.empty:
        return HOURLY
    ids = data[SERIES_ID].to_numpy()
    stamps = pd.DatetimeIndex(data[TIMESTAMP]).asi8
    same = ids[1:] == ids[:-1]
    diffs = np.diff(stamps)[same]
    diffs = diffs[diffs > 0]
    return Resolution(int(diffs.min())) if diffs.size else HOURLY
