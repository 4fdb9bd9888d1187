"""Policy statements by Sid: how bootstrap writes its statements into a policy others share.

A policy bootstrap does not own alone (the policy of a key or bucket it did not create, the account's Glue Data
Catalog resource policy) is changed statement by statement: each of bootstrap's statements replaces the
statement of the same Sid or is appended, every other statement is kept in its place, and removing takes out
exactly bootstrap's Sids. The functions are pure.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from typing import Any

__all__ = ["merge_statements", "remove_statements", "statements_of"]


def statements_of(policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The statements of ``policy`` as a list of copies (IAM allows a lone statement object in its place)."""
    statements = policy.get("Statement", [])
    return [dict(s) for s in (statements if isinstance(statements, list) else [statements])]


def merge_statements(policy: Mapping[str, Any], statements: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``policy`` with each of ``statements`` replacing the statement of the same Sid, or appended; every other
    statement (and its order) is kept. Pure and idempotent.

    >>> policy = {"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow"}, {"Sid": "B"}]}
    >>> merge_statements(policy, [{"Sid": "A", "Effect": "Deny"}, {"Sid": "C"}])["Statement"]
    [{'Sid': 'A', 'Effect': 'Deny'}, {'Sid': 'B'}, {'Sid': 'C'}]
    """
    merged = copy.deepcopy(dict(policy))
    current = statements_of(merged)
    for statement in statements:
        index = next((i for i, s in enumerate(current) if s.get("Sid") == statement["Sid"]), None)
        if index is None:
            current.append(copy.deepcopy(statement))
        else:
            current[index] = copy.deepcopy(statement)
    merged["Statement"] = current
    return merged


def remove_statements(policy: Mapping[str, Any], sids: Collection[str]) -> dict[str, Any]:
    """``policy`` without the statements whose Sid is in ``sids`` (pure).

    >>> remove_statements({"Statement": [{"Sid": "A"}, {"Sid": "B"}]}, {"A"})
    {'Statement': [{'Sid': 'B'}]}
    """
    kept = copy.deepcopy(dict(policy))
    kept["Statement"] = [s for s in statements_of(kept) if s.get("Sid") not in sids]
    return kept
