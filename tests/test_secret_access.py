"""`--secret-access byName` (the default): the operator neither lists nor watches Secrets; it reads each one it needs
by name, remembered for a while, so its token needs only get, create and patch on Secrets."""

from __future__ import annotations

from aifleet.clients.kube import Reachability
from aifleet.reconciler.observed import AppliedCache, SecretReader
from test_kube_client import Scripted, _kube

SECRET = {"apiVersion": "v1", "kind": "Secret", "data": {"password": "cHc="},
          "metadata": {"name": "db", "namespace": "ml", "resourceVersion": "4", "managedFields": [{"manager": "x"}]}}


def test_one_read_per_secret_per_period_and_a_missing_one_asked_each_time():
    now = [0.0]
    reads: list[tuple[str, str]] = []

    def get(namespace, name):
        reads.append((namespace, name))
        return SECRET if name == "db" else None

    reader = SecretReader(get, ttl=120, clock=lambda: now[0])
    for _ in range(5):
        assert reader.read("ml", "db")["data"] == SECRET["data"]
        assert reader.read("ml", "absent") is None
        now[0] += 20
    # 80 s: one read of the Secret that exists; the missing one (about to be created) each time.
    assert reads.count(("ml", "db")) == 1 and reads.count(("ml", "absent")) == 5
    now[0] = 125.0
    reader.read("ml", "db")
    assert reads[-1] == ("ml", "db") and reads.count(("ml", "db")) == 2
    assert "managedFields" not in reader.read("ml", "db")["metadata"]


def test_answers_older_than_the_period_are_dropped():
    now = [0.0]
    reader = SecretReader(lambda namespace, name: SECRET, ttl=120, clock=lambda: now[0])
    for i in range(50):
        reader.read(f"ns{i}", "db")  # fifty AIServices' Secrets, their AIServices deleted since
    now[0] = 121.0
    reader.read("ml", "db")
    assert len(reader._read) == 1


GENERATED = {"apiVersion": "v1", "kind": "Secret", "data": {"key": "aw=="},
             "metadata": {"name": "chat-admin", "namespace": "ml", "resourceVersion": "9",
                          "annotations": {"aifleet.dev/generated": "true"}}}


def test_a_generated_secret_of_a_settled_aiservice_is_read_rarely_and_as_often_as_any_once_it_is_not():
    now = [0.0]
    reads: list[str] = []
    secrets = {"chat-admin": GENERATED, "db": SECRET}

    def get(namespace, name):
        reads.append(name)
        return secrets.get(name)

    reader = SecretReader(get, ttl=120, generated_ttl=1800, clock=lambda: now[0])
    for name in ("chat-admin", "db"):
        reader.read("ml", name)
    reader.settle("ml", ["chat-admin", "db"], settled=True)
    now[0] = 1000.0  # past the period: the user's Secret is read again (a rotation must be seen), ours is not
    assert reader.read("ml", "chat-admin")["metadata"]["name"] == "chat-admin" and reader.read("ml", "db")
    assert reads == ["chat-admin", "db", "db"]
    now[0] = 1801.0
    reader.read("ml", "chat-admin")
    assert reads.count("chat-admin") == 2
    # Someone deleted it; a component stopped being Ready (its new pods cannot start), and the next pass knows.
    del secrets["chat-admin"]
    reader.settle("ml", ["chat-admin", "db"], settled=False)
    now[0] = 1950.0
    assert reader.read("ml", "chat-admin") is None and reads.count("chat-admin") == 3


def test_the_periodic_sweep_keeps_a_settled_generated_secret_and_drops_what_its_aiservice_left():
    now = [0.0]
    reader = SecretReader(lambda namespace, name: GENERATED, ttl=120, generated_ttl=1800, clock=lambda: now[0])
    reader.read("ml", "chat-admin")
    reader.read("gone", "chat-admin")  # an AIService deleted since: never settled again
    reader.settle("ml", ["chat-admin"], settled=True)
    now[0] = 500.0
    reader.read("other", "x")  # any read sweeps once the period is over
    assert set(reader._read) == {("ml", "chat-admin"), ("other", "x")}
    assert reader._settled == {("ml", "chat-admin")}


def test_the_worker_reads_unwatched_secrets_by_name():
    from aifleet.reconciler import handlers

    assert "Secret" not in handlers._watched  # nothing in the unit tests starts the watches
    asked: list[tuple[str, str]] = []
    reader = SecretReader(lambda namespace, name: asked.append((namespace, name)) or SECRET)
    deployment = {"metadata": {"name": "chat-triton"}}
    applied = AppliedCache()
    lookup = handlers._lookup({handlers.index_id(handlers.BY_KIND["Deployment"]): {("ml", "chat-triton"): [deployment]}},
                              reader, applied)
    assert lookup("Deployment", "ml", "chat-triton") is deployment
    assert lookup("Secret", "ml", "db")["metadata"]["name"] == "db" and asked == [("ml", "db")]
    assert lookup("Service", "ml", "chat-triton") is None  # watched kinds still come from their index only
    # A Secret the operator just generated is known without asking the API server for it.
    applied.remember({"kind": "Secret", "metadata": {"namespace": "ml", "name": "chat-admin", "resourceVersion": "7"}})
    assert lookup("Secret", "ml", "chat-admin")["metadata"]["resourceVersion"] == "7" and asked == [("ml", "db")]


def test_an_object_in_a_secrets_way_is_found_by_name_not_by_a_list():
    server = Scripted([(200, SECRET)])
    server.thread.start()
    try:
        found = _kube(server.url, Reachability()).find("Secret", "ml", "db")
    finally:
        server.server.shutdown()
        server.server.server_close()
    assert found is not None and found["kind"] == "Secret" and found["metadata"]["name"] == "db"
    assert [(method, path) for method, path, _ in server.requests] == [("GET", "/api/v1/namespaces/ml/secrets/db")]


def test_a_pass_that_generates_a_secret_comes_back_soon_for_what_uses_it():
    """Without a watch on Secrets no event announces the new one: the pass asks to be run again soon."""
    import copy

    import yaml

    from aifleet.reconciler.observed import AppliedCache
    from aifleet.reconciler.sync import reconcile
    from conftest import EXAMPLES
    from test_canary_reconcile import Store

    doc = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    doc["metadata"].update(uid="0000-1111", generation=1, namespace="default")
    doc["spec"]["redis"] = {"maxMemory": "64mb"}
    store, applied = Store(doc), AppliedCache()

    def run():
        return reconcile(copy.deepcopy(store.objects[("AIService", "default", "sentiment")]), store.lookup, store,
                         applied, lambda *e: None)

    first = run()
    assert ("Secret", "default", "sentiment-redis-auth") in store.objects and first.waiting_on_user
    assert ("StatefulSet", "default", "sentiment-redis") not in store.objects  # rendered by the next pass
    second = run()
    assert ("StatefulSet", "default", "sentiment-redis") in store.objects and not second.waiting_on_user


def test_without_secret_access_to_watch_every_child_kind_but_secrets_is_watched_once():
    from aifleet.clients.kinds import CHILD_KINDS
    from aifleet.reconciler import handlers

    handlers.watch_children(watch_secrets=False)
    handlers.watch_children(watch_secrets=False)  # registered once, however often asked
    assert handlers._watched == {k.kind for k in CHILD_KINDS} - {"Secret"}
