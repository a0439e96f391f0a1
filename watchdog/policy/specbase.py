"""The base of every policy model: strict (unknown keys are errors) and frozen.

Its own module so the model modules (`signalspecs`, `scenariospecs`,
`operatingspecs`) and `schema`, which assembles them into a `Policy`, share it
without importing each other in a circle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Op = Literal[">", ">=", "<", "<=", "==", "!="]


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt `clear_for` must not silently vanish."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

