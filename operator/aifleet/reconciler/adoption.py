"""Whether an object that already holds a child's name may be taken over. Pure.

Server-side apply with force would take over any object of that name, and the owner reference it adds would later
have the garbage collector delete it with the AIService. aifleet takes over only what it made: an object owned by
this AIService, or one left by an earlier AIService of the same name (its aifleet labels kept, no other
controller). Anything else stays untouched and the component says why.
"""

from __future__ import annotations

from typing import Any

from ..api.children import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL


def adoption_refusal(existing: dict[str, Any], desired: dict[str, Any]) -> str | None:
    """Why `existing` (live, same kind and name as the rendered `desired`) must not be adopted; None when it may."""
    meta, wanted = existing.get("metadata") or {}, desired["metadata"]
    what = f"{desired['kind']} {wanted['name']}"
    references = meta.get("ownerReferences") or []
    if owned_by(existing, {ref.get("uid") for ref in wanted.get("ownerReferences") or []}):
        return None
    controller = next((ref for ref in references if ref.get("controller")), None)
    if controller is not None:
        return f"{what} already exists and is controlled by {controller.get('kind')} {controller.get('name')}: not adopted"
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(INSTANCE_LABEL) == wanted["labels"].get(INSTANCE_LABEL):
        return None
    return f"{what} already exists and aifleet did not create it: not adopted; delete or rename it"


def owned_by(obj: dict[str, Any] | None, uids: set[str | None]) -> bool:
    """Whether `obj` has an owner reference to one of `uids` (an empty set owns nothing)."""
    references = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") in uids for ref in references if ref.get("uid"))
