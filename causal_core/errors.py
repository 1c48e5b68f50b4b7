"""Typed errors: every failure whybatch reports derives from :class:`WhybatchError`.

Each message names the field, column or node at fault and what was expected, so a
user can fix the input without reading a traceback.
"""

from __future__ import annotations


class WhybatchError(Exception):
    """Base class of every error whybatch raises on purpose."""


class GraphError(WhybatchError):
    """A causal graph is malformed: bad syntax, a cycle, a self-loop, an unknown node."""


class SpecError(WhybatchError):
    """A study spec is invalid. ``problems`` lists every ``(field, message)`` found."""

    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class IdentificationError(WhybatchError):
    """An effect cannot be identified, or an estimand cannot be evaluated as asked."""


class EstimationError(WhybatchError):
    """An estimator cannot run on the data it was given (constant treatment, collinearity...)."""


class DataCheckError(WhybatchError):
    """The data failed a declared check (nulls, empty partition, sample-ratio mismatch...)."""


class ResultsError(WhybatchError):
    """A results value or document that is not whybatch's results.json: the message names
    the field and what was expected."""


class TrackingError(WhybatchError):
    """MLflow could not record a run: the store is unreachable or refused a write. The
    message names the tracking URI; results.json, written before tracking, is kept."""
