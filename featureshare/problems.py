"""Validation problems: every problem is collected first, then raised as one error.

A validator gathers :class:`Problem` objects (field, value, what is wrong) and calls :func:`raise_problems`
once, so the user sees everything to fix in a single :class:`~featureshare.errors.ValidationError`.

>>> raise_problems("invalid options", [Problem("chunk_size", 0, "must be a positive integer")])
Traceback (most recent call last):
...
featureshare.errors.ValidationError: invalid options: 1 problem(s): chunk_size=0: must be a positive integer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from featureshare.errors import ValidationError

__all__ = ["Problem", "raise_problems"]


@dataclass(frozen=True)
class Problem:
    """One validation problem: which field, which value, what is wrong."""

    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}: {self.message}"


def raise_problems(what: str, problems: Sequence[Problem], hint: str | None = None) -> None:
    """Raise one :class:`ValidationError` listing every problem (no-op when there are none)."""
    if not problems:
        return
    lines = [str(p) for p in problems]
    raise ValidationError(f"{what}: {len(lines)} problem(s): " + "; ".join(lines), field=problems[0].field,
                          value=problems[0].value, problems=lines, hint=hint)
