"""How old the served features are: per series, the origin of its latest online state.

Every online read a forecast makes updates the series' origin (`seen`, a dict update on the
request path). Readiness and /metrics also `refresh` every series of the offline store from
the online store, at most once per `REFRESH_S` (from SQLite a kept, unchanged state costs no
read, see `online`), so a service that nobody has asked yet still reports what it would serve.
Ages are computed at the moment they are asked for: a series with no new data grows older.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fluxora.data.schema import SERIES_ID
from fluxora.errors import FeatureStoreError

log = logging.getLogger("fluxora.api")
REFRESH_S = 30.0  # readiness and /metrics re-read every known series at most this often
READ_CHUNK = 500  # series per online read during a refresh
DAY_S = 86_400.0


@dataclass(frozen=True)
class Staleness:
    """The state of the known series now."""

    known: int  # series with an online state
    stale: list[str]  # beyond the soft limit, oldest first
    max_age_s: float | None  # the oldest state's age; None with no series known
    oldest_origin_ns: int | None
    limit_s: float  # 0: the soft limit is off (nothing is stale)
    hard_limit_s: float

    def detail(self) -> str:
        """Readiness's one-line reason (only meaningful when `stale`)."""
        from fluxora.api.rendering import iso_utc_ns

        oldest = f"{(self.max_age_s or 0.0) / DAY_S:.1f} days (origin {iso_utc_ns(self.oldest_origin_ns or 0)})"
        refused = (
            f"; beyond {self.hard_limit_s:.0f} s (serve.max_feature_age_hard_s) forecasts are refused"
            if self.hard_limit_s
            else ""
        )
        return (
            f"stale features: {len(self.stale)} of {self.known} series older than serve.max_feature_age_s "
            f"({self.limit_s:.0f} s), oldest {oldest}; new data has not reached the online store "
            f"(run ingest and materialize, e.g. `fluxora run`){refused}"
        )


class Freshness:
    """Series -> latest origin (ns since the epoch), with the soft and hard limits."""

    def __init__(self, limit_s: float, hard_limit_s: float, clock: Callable[[], float] = time.time) -> None:
        self.limit_s = float(limit_s)
        self.hard_limit_s = float(hard_limit_s)
        self._clock = clock
        self._origins: dict[str, int] = {}
        self._refreshed = float("-inf")  # monotonic time of the last refresh

    def seen(self, series: Sequence[str], origin_ns: Sequence[int]) -> None:
        self._origins.update(zip(series, origin_ns, strict=True))

    def is_stale(self, age_s: float) -> bool:
        return self.limit_s > 0 and age_s > self.limit_s

    def is_refused(self, age_s: float) -> bool:
        return self.hard_limit_s > 0 and age_s > self.hard_limit_s

    def now(self) -> Staleness:
        now_ns = int(self._clock() * 1e9)
        ages = sorted(((now_ns - o) / 1e9, s, o) for s, o in self._origins.items())
        stale = [s for age, s, _ in reversed(ages) if self.is_stale(age)]
        age, _, origin = ages[-1] if ages else (None, None, None)
        return Staleness(len(ages), stale, age, origin, self.limit_s, self.hard_limit_s)

    def due(self) -> bool:
        return time.monotonic() - self._refreshed >= REFRESH_S

    def refresh(self, series: Sequence[str], read: Callable[[list[str]], tuple[list[str], list[int]]]) -> None:
        """Re-read `series` (every series of the offline store) through `read` (found series,
        their origins). A store that cannot be read leaves what was known; readiness then says
        what the model store and registry say, and the forecast routes answer 503 themselves."""
        self._refreshed = time.monotonic()
        try:
            for k in range(0, len(series), READ_CHUNK):
                found, origins = read(list(series[k : k + READ_CHUNK]))
                self.seen(found, origins)
        except FeatureStoreError as exc:
            log.warning("feature freshness not refreshed: %s", exc)


def offline_series(path: object) -> list[str]:
    """The series of the offline store (its parquet file), without pandas; [] when it does not exist."""
    import pyarrow.parquet as pq

    try:
        column = pq.ParquetFile(str(path)).read(columns=[SERIES_ID]).column(SERIES_ID)
    except (FileNotFoundError, OSError, KeyError, ValueError) as exc:
        log.debug("no offline series for freshness: %s", exc)
        return []
    return sorted(str(s) for s in column.unique().to_pylist())
