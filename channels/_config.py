"""Build an adapter's frozen config from the plain options mapping the pipeline passes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def from_options(cls: type[T], options: Mapping[str, Any]) -> T:
    """Keep the keys ``cls`` knows; unknown keys are ignored and ``None`` means "use the default".

    Unknown keys are ignored rather than refused so the pipeline can pass a
    newer set of settings to an older adapter; the pipeline's own settings
    model is where typos are caught.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in options.items() if k in names and v is not None})
