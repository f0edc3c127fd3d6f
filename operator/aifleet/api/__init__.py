"""The `aifleet.dev/v1alpha1` API: pydantic models are the source of truth; the CRD is generated from them."""

from .aiservice import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    AIService,
)

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "VERSION", "AIService"]
