"""JSON-native copies of values, so a result holds exactly what its JSON text holds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def json_native(value: Any) -> Any:
    """A copy made only of what JSON writes and reads back unchanged: dicts with text
    keys, lists, text, booleans, integers, finite floats and None.

    Mappings become dicts and sequences or arrays lists; numpy scalars become Python
    ones; a float that is not finite becomes None (JSON has no NaN); anything else
    becomes its text. ``json.loads(json.dumps(json_native(v))) == json_native(v)``.
    """
    if isinstance(value, Mapping):
        return {str(k): json_native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_native(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_native(v) for v in value.tolist()]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return str(value)


def finite_or_none(value: Any) -> float | None:
    """A float, or None for a missing or non-finite number (how results.json writes NaN)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None
