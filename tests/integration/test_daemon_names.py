"""Names and labels against a real `agentd serve`: a sandbox's unique name works wherever its
id does (every /v1/sandboxes/{id} route family and the CLI), a name that would read as an id
is refused, a name is taken once; GET /v1/sandboxes filters by label (repeated: all must
hold), state, backend and name, and shows each sandbox's labels; a query parameter a route
does not take, or a filter value that names nothing, is a 400 naming it."""
import json
import urllib.parse

import pytest

from daemon_util import Daemon, forward_port


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def create(d, name=None, labels=None, backend="container"):
    spec = {"labels": labels} if labels else None
    kw = {"name": name} if name else {}
    return d.create(backend=backend, spec=spec, **kw)


def test_every_route_family_takes_the_name(d):
    sid = create(d, "names-web")
    base = "/v1/sandboxes/names-web"
    # inspect, exec
    r = d.get(base)
    assert r.status == 200 and r.json["id"] == sid and r.json["name"] == "names-web", r
    r = d.exec("names-web", ["/bin/sh", "-c", "echo by-name > f.txt"])
    assert r.status == 200 and r.json["exit_code"] == 0 and r.json["sandbox_id"] == sid, r
    # files
    r = d.get(base + "/files?path=f.txt")
    assert r.status == 200 and r.body == b"by-name\n", r
    assert d.request("PUT", base + "/files?path=g.txt", raw=b"put").status == 200
    assert d.exec(sid, ["/bin/cat", "g.txt"]).json["stdout"] == "put"
    # processes
    r = d.post(base + "/processes", {"argv": ["/bin/sleep", "30"]})
    assert r.status == 201, r
    pid = r.json["pid"]
    assert [p["pid"] for p in d.get(base + "/processes").json["processes"]] == [pid]
    assert d.post(f"{base}/processes/{pid}/signal", {"signal": "KILL"}).status == 200
    # usage, ports, contexts
    assert d.get(base + "/usage").json["id"] == sid
    assert forward_port(d, "names-web", 8000)["port"] == 8000
    assert d.get(base + "/ports").json["ports"][0]["port"] == 8000
    # snapshot and restore
    r = d.post(base + "/snapshots", {"name": "s1"})
    assert r.status == 201 and r.json["sandbox_id"] == sid, r
    snap = r.json["snapshot_id"]
    assert d.exec(sid, ["/bin/rm", "f.txt"]).json["exit_code"] == 0
    assert d.post(base + "/restore", {"snapshot_id": snap}).status == 200
    assert d.exec(sid, ["/bin/cat", "f.txt"]).json["stdout"] == "by-name\n"
    # suspend, resume
    assert d.post(base + "/suspend").json["state"] == "suspended"
    assert d.post(base + "/resume").json["state"] == "ready"
    # the CLI: exec, inspect, rm by name
    p = d.cli("sandbox", "exec", "names-web", "--", "/bin/cat", "g.txt")
    assert p.returncode == 0 and p.stdout == b"put", p
    p = d.cli("sandbox", "cp", "names-web:f.txt", "-")
    assert p.returncode == 0 and p.stdout == b"by-name\n", p
    p = d.cli("sandbox", "inspect", "--json", "names-web")
    assert p.returncode == 0 and json.loads(p.stdout)["id"] == sid, p
    # destroy by name; the row stays inspectable by name, the name is free again
    p = d.cli("sandbox", "rm", "names-web")
    assert p.returncode == 0 and p.stdout.strip() == sid.encode(), p
    r = d.get(base)
    assert r.status == 200 and r.json["id"] == sid and r.json["state"] == "destroyed", r
    assert d.exec("names-web", ["/bin/true"]).status == 409
    again = create(d, "names-web")
    assert again != sid and d.get(base).json["id"] == again
    assert d.delete(base).status == 200


def test_an_id_shaped_name_is_refused_and_a_name_is_taken_once(d):
    for bad in ("0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF"):
        r = d.post("/v1/sandboxes", {"backend": "container", "name": bad})
        assert r.status == 400 and "read as a sandbox id" in r.error["message"], r
    sid = create(d, "names-once")
    r = d.post("/v1/sandboxes", {"backend": "container", "name": "names-once"})
    assert r.status == 409 and sid in r.error["message"], r
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    # an unknown name is a 404, a malformed one a 400
    assert d.get("/v1/sandboxes/no-such-name").status == 404
    r = d.get("/v1/sandboxes/" + "A" * 31 + "B")
    assert r.status == 400 and "sandbox id or name" in r.error["message"], r


def names_of(d, query):
    r = d.get("/v1/sandboxes" + query)
    assert r.status == 200, r
    return sorted(s["name"] for s in r.json["sandboxes"] if s["name"])


def test_list_filters_and_their_combinations(d):
    made = [create(d, "lf-a-dev", {"team": "a", "env": "dev"}),
            create(d, "lf-a-prod", {"team": "a", "env": "prod"}),
            create(d, "lf-b-dev", {"team": "b", "env": "dev"}),
            create(d, "lf-host", {"team": "a", "env": "dev"}, backend="host-direct")]
    try:
        listed = {s["name"]: s for s in d.get("/v1/sandboxes").json["sandboxes"]}
        assert listed["lf-a-dev"]["labels"] == {"team": "a", "env": "dev"}, listed
        assert "spec" not in listed["lf-a-dev"]
        assert names_of(d, "?label=team=a") == ["lf-a-dev", "lf-a-prod", "lf-host"]
        assert names_of(d, "?label=team=a&label=env=dev") == ["lf-a-dev", "lf-host"]
        assert names_of(d, "?label=team=a&label=env=dev&backend=container") == ["lf-a-dev"]
        # an alias filters as its backend
        assert names_of(d, "?label=env=dev&backend=host") == ["lf-host"]
        assert names_of(d, "?label=team=a&label=team=b") == []
        assert names_of(d, "?name=lf-b-dev&state=ready") == ["lf-b-dev"]
        assert d.post(f"/v1/sandboxes/{made[1]}/suspend").status == 200
        assert names_of(d, "?label=team=a&state=suspended") == ["lf-a-prod"]
        assert names_of(d, "?label=team=a&state=ready") == ["lf-a-dev", "lf-host"]
        value = urllib.parse.quote("a b=c&d")
        assert names_of(d, f"?label=odd={value}") == []
        # the CLI's ls takes the same filters
        p = d.cli("sandbox", "ls", "--label", "team=a", "--label", "env=dev", "--backend",
                  "container")
        assert p.returncode == 0, p
        rows = p.stdout.decode().splitlines()[1:]
        assert [r.split()[1] for r in rows] == ["lf-a-dev"], p.stdout
    finally:
        for sid in made:
            d.delete(f"/v1/sandboxes/{sid}")


@pytest.mark.parametrize("query,word", [
    ("?state=sleeping", "state: unknown state 'sleeping'"),
    ("?backend=nosuch", "backend: unknown backend 'nosuch'"),  # issue 15: vm is microvm's alias
    ("?label=team", "label: expected KEY=VALUE"),
    ("?state=ready&state=failed", "state: given twice"),
    ("?sort=name", 'unknown query parameter "sort"'),
])
def test_bad_list_filters_are_400s_naming_them(d, query, word):
    r = d.get("/v1/sandboxes" + query)
    assert r.status == 400 and word in r.error["message"], r


def test_unknown_query_parameters_are_400_on_every_route(d):
    sid = create(d, "names-q")
    try:
        for method, path in [("GET", "/v1/health"), ("GET", "/v1/metrics"),
                             ("GET", f"/v1/sandboxes/{sid}"),
                             ("GET", "/v1/sandboxes/names-q/usage"),
                             ("GET", "/v1/sandboxes/names-q/files?path=x"),
                             ("GET", "/v1/audit?since=0"),
                             ("POST", "/v1/sandboxes/names-q/exec")]:
            sep = "&" if "?" in path else "?"
            r = d.request(method, path + sep + "verbose=1",
                          body={"argv": ["/bin/true"]} if method == "POST" else None)
            assert r.status == 400, (path, r)
            assert 'unknown query parameter "verbose"' in r.error["message"], (path, r)
        # what the clients send still works
        assert d.get("/v1/sandboxes/names-q/files?path=nothing").status == 404
        assert d.get("/v1/audit?since=0").status == 200
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
