"""Point-in-time training sets across accounts: :class:`TrainingSet` (describe, ``sql()``, ``build()``) and
:class:`BuiltTrainingSet` (the running or finished build). See :mod:`featureshare.training.build`."""

from __future__ import annotations

from featureshare.training.build import BuiltTrainingSet, TrainingSet
from featureshare.training.sql import EntitySource, JoinSpec, PointInTimeQuery, SourceTable

__all__ = ["BuiltTrainingSet", "EntitySource", "JoinSpec", "PointInTimeQuery", "SourceTable", "TrainingSet"]
