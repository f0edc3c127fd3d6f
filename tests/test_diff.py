from __future__ import annotations

from aifleet.reconciler.diff import drift


def test_missing_object():
    assert drift({"a": 1}, None) == "missing"


def test_server_defaults_are_not_drift():
    want = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "t", "image": "x:1"}]}}}}
    have = {
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "t", "image": "x:1", "terminationMessagePath": "/dev/x"}]}},
        }
    }
    assert drift(want, have) is None


def test_hand_edit_is_drift_with_its_path():
    want = {"spec": {"template": {"spec": {"containers": [{"name": "t", "image": "x:1"}]}}}}
    have = {"spec": {"template": {"spec": {"containers": [{"name": "t", "image": "x:2"}]}}}}
    assert drift(want, have) == ".spec.template.spec.containers[0].image"


def test_quantities_compare_by_value():
    assert drift({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"}) is None
    assert drift({"cpu": "2"}, {"cpu": "1"}) == ".cpu"


def test_list_length_change_is_drift():
    assert drift({"ports": [1, 2]}, {"ports": [1]}) == ".ports"


def test_server_owned_metadata_is_ignored():
    assert drift({"metadata": {"name": "a", "resourceVersion": "1"}}, {"metadata": {"name": "a", "resourceVersion": "9"}}) is None
