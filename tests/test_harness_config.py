"""The e2e harness's config rewriting: what it forces into the operator's rendered pgbouncer.ini, and Kafka's heap."""

from __future__ import annotations

from harness import fill_placeholders, ini_override, min_heap, retarget_databases

INI = """\
[databases]
app = host=postgres.ns.svc port=5432 dbname=app
; other = host=x port=1

[pgbouncer]
; the operator's comment stays
listen_port = 6432
Pool_Mode = transaction
"""


def test_ini_override_replaces_keys_case_insensitively_and_drops_none():
    out = ini_override(INI, "pgbouncer", {"listen_port": 7000, "pool_mode": None, "logfile": ""})
    section = out.split("[pgbouncer]")[1].splitlines()
    assert section[1:3] == ["listen_port = 7000", "logfile = "]
    assert "; the operator's comment stays" in section
    assert not any(line.lower().startswith("pool_mode") for line in section)
    assert "6432" not in out


def test_ini_override_adds_a_missing_section():
    assert ini_override("[databases]\n", "pgbouncer", {"listen_port": 1}).endswith("[pgbouncer]\nlisten_port = 1\n")


def test_retarget_databases_aims_every_entry_but_comments():
    out = retarget_databases(INI + "[databases]\nbare = dbname=x\n", "127.0.0.1", 5555)
    assert "app = host=127.0.0.1 port=5555 dbname=app" in out
    assert "; other = host=x port=1" in out
    assert "bare = dbname=x host=127.0.0.1 port=5555" in out
    assert "listen_port = 6432" in out, "other sections are left alone"


def test_fill_placeholders_leaves_unknown_braces():
    assert fill_placeholders("{listen_port} {other} {}", {"listen_port": 6432}) == "6432 {other} {}"


def test_min_heap_is_half_of_a_megabyte_heap():
    assert min_heap("512m") == "256m"
    assert min_heap("1g") == "1g"
