"""Attribute types, inferred as refinery does, and value conversion.

Strings from CSV-like files are parsed into numbers and booleans; JSON values
keep their types. A string column is TEXT when its sampled values have more
than four words on average, else CATEGORY.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from core.errors import DataImportError
from core.store.models import AttributeType

SAMPLE_SIZE = 100
TEXT_MIN_WORDS = 4
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "false": False}


def _is_int_string(value: str) -> bool:
    # "007" is an identifier, not the number 7: keep leading zeros by treating it as a category.
    digits = value.lstrip("+-")
    return bool(_INT.fullmatch(value)) and (len(digits) == 1 or not digits.startswith("0"))


def _is_float_string(value: str) -> bool:
    # A decimal literal only: Python's float() also takes "1_000", "nan" and "inf", and "007" would lose
    # the leading zeros that make it an identifier.
    if not _FLOAT.fullmatch(value) or (_INT.fullmatch(value) and not _is_int_string(value)):
        return False
    return math.isfinite(float(value))


def infer_type(values: Sequence[Any]) -> AttributeType:
    """The attribute type of a column from its non-empty values."""
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return AttributeType.CATEGORY
    if all(isinstance(v, bool) or (isinstance(v, str) and v.strip().lower() in _BOOLS) for v in present):
        return AttributeType.BOOLEAN
    if all(
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and _is_int_string(v.strip()))
        for v in present
    ):
        return AttributeType.INTEGER
    if all(
        (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        or (isinstance(v, str) and _is_float_string(v.strip()))
        for v in present
    ):
        return AttributeType.FLOAT
    sample = [v if isinstance(v, str) else _to_string(v) for v in present[:SAMPLE_SIZE]]
    mean_words = sum(len(s.split()) for s in sample) / len(sample)
    return AttributeType.TEXT if mean_words > TEXT_MIN_WORDS else AttributeType.CATEGORY


def convert(value: Any, data_type: str, *, column: str, file: str, line: int) -> Any:
    """Convert one value to the attribute's type; raise naming the line if it does not fit."""
    try:
        return converter(data_type)(value)
    except (ValueError, KeyError, TypeError) as e:
        raise DataImportError(
            f"column {column!r} holds {data_type} values, but this row has {str(value)[:50]!r}; "
            "fix the value or import it into a new project",
            file=file,
            line=line,
        ) from e


def converter(data_type: str) -> Callable[[Any], Any]:
    """The function converting one value to ``data_type`` (None for empty values).

    It raises ValueError, KeyError or TypeError for a value that does not fit;
    :func:`convert` turns that into an error naming the line. Importers call the
    converter directly in their row loop, which is the hot path of an import.
    """
    return _CONVERTERS.get(data_type, _to_text)


def needs_conversion(data_type: str, *, typed: bool) -> bool:
    """False when values read from a CSV-like file (strings, None for empty cells) are already of the type."""
    return typed or data_type in _CONVERTERS


def _to_text(value: Any) -> Any:
    if value.__class__ is str:
        return value or None
    if value is None:
        return None
    return _to_string(value)


def _to_integer(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    return int(str(value).strip())


def _to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _to_boolean(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return _BOOLS[str(value).strip().lower()]


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    AttributeType.INTEGER.value: _to_integer,
    AttributeType.FLOAT.value: _to_float,
    AttributeType.BOOLEAN.value: _to_boolean,
}


def _to_string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
