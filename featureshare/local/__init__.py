"""featureshare.local: the embedded two-account AWS (moto + Feature Store runtime + offline store + Athena).

Needs the ``local`` extra (``moto[server]==5.2.5``, ``duckdb``). See ``EmbeddedAWS`` for usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featureshare.local.embedded import EmbeddedAWS, serve

__all__ = ["DEFAULT_ACCOUNTS", "EmbeddedAWS", "serve"]


def __getattr__(name: str) -> Any:
    # Lazy so that importing featureshare.local (e.g. for athena_service) does not import moto eagerly.
    if name in __all__:
        from featureshare.local import embedded

        return getattr(embedded, name)
    raise AttributeError(f"module 'featureshare.local' has no attribute {name!r}")
