"""kopf's namespace bookkeeping with aifleet's patch: a namespace being deleted stays watched until it is gone."""

from __future__ import annotations

import asyncio

from kopf._cogs.structs import references

from aifleet.reconciler import kopf_patches

PATTERNS = ["team-*"]
NAME = "team-a"


def event(type_, deleted=False, conditions=()):
    meta = {"name": NAME, **({"deletionTimestamp": "2026-12-04T20:00:00Z"} if deleted else {})}
    return {"type": type_, "object": {"metadata": meta, "status": {"conditions": [
        {"type": t, "status": s, "reason": t, "message": t} for t, s in conditions]}}}


# What the namespace controller posts while it deletes a namespace whose content has a finalizer.
DELETION = [
    event("ADDED"),
    event("MODIFIED", deleted=True, conditions=[("NamespaceDeletionDiscoveryFailure", "False"),
                                                 ("NamespaceDeletionContentFailure", "False")]),
    event("MODIFIED", deleted=True, conditions=[("NamespaceContentRemaining", "True"),
                                                 ("NamespaceFinalizersRemaining", "True")]),
]


def watched_after(revise, events) -> list[bool]:
    insights = references.Insights()
    seen = []
    for raw in events:
        revise(insights=insights, namespaces=PATTERNS, raw_events=[raw])
        seen.append(NAME in insights.namespaces)
    return seen


def test_kopf_alone_stops_watching_before_the_content_is_gone():
    # The defect the patch exists for: dropped at the first deletion event, never taken back.
    assert watched_after(kopf_patches._revise_namespaces, DELETION) == [True, False, False]


def test_patched_a_namespace_is_watched_until_deleted():
    assert watched_after(kopf_patches.revise_namespaces, [*DELETION, event("DELETED", deleted=True)]) == [
        True, True, True, False]


def test_patched_a_namespace_found_terminating_at_startup_is_watched():
    insights = references.Insights()
    body = DELETION[1]["object"]
    kopf_patches.revise_namespaces(insights=insights, namespaces=PATTERNS, raw_bodies=[body])
    assert NAME in insights.namespaces


def test_patched_other_namespaces_are_not_watched():
    insights = references.Insights()
    other = {"type": "ADDED", "object": {"metadata": {"name": "ops", "deletionTimestamp": "x"}}}
    kopf_patches.revise_namespaces(insights=insights, namespaces=PATTERNS, raw_events=[other])
    assert not insights.namespaces


def test_the_patch_is_installed_by_the_handlers_module():
    from kopf._core.reactor import observation

    import aifleet.reconciler.handlers  # noqa: F401

    assert observation.revise_namespaces is kopf_patches.revise_namespaces


def test_a_watcher_stopped_before_it_listed_does_not_hold_the_operator_back():
    """A namespace deleted just as the operator starts: kopf stops its watcher before the listing, and the toggle that
    watcher held kept every handler of the operator waiting for good."""
    from kopf._cogs.aiokits import aiotoggles
    from kopf._core.reactor import queueing

    import aifleet.reconciler.handlers  # noqa: F401 - installs the patches
    from aifleet.reconciler.kopf_patches import _releasing_readiness

    assert getattr(queueing.watcher, "__wrapped__", None) is not None
    assert getattr(queueing.worker, "__wrapped__", None) is not None

    async def scenario() -> tuple[bool, bool]:
        indexed = aiotoggles.ToggleSet(all)
        held = await indexed.make_toggle(name="the watcher of a namespace being deleted")

        async def listing_forever(**_kwargs) -> None:
            await asyncio.sleep(3600)

        task = asyncio.create_task(_releasing_readiness(listing_forever)(operator_indexed=indexed, resource_indexed=held))
        await asyncio.sleep(0)
        before = indexed.is_on()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return before, indexed.is_on()

    assert asyncio.run(scenario()) == (False, True)
