"""What every step returns: a small frozen record, read by attribute and printed as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class StepResult:
    """Base of the steps' results. `step` names the step (a class constant, not a field)."""

    step: ClassVar[str] = ""

    def outputs(self) -> dict[str, Any]:
        """The result's fields as plain data (what the step cache records and `fluxora stage`
        prints); `cached` only when the step reused an earlier result."""
        out = asdict(self)
        if out.get("cached") is False:
            del out["cached"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "outputs": self.outputs()}
