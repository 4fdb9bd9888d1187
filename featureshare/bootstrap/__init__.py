"""Bootstrap: the least-privilege IAM documents of a Topology, and plan/apply/destroy of its resources."""

from __future__ import annotations

from featureshare.bootstrap.templates import (
    DocumentKind,
    PolicyDocument,
    load_template,
    placeholders,
    policy_documents,
    render,
)

__all__ = ["DocumentKind", "PolicyDocument", "load_template", "placeholders", "policy_documents", "render"]
