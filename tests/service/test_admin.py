"""Admin routes: key check, reload, promote, rollback; a failed load keeps the old version."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os

import httpx
import pytest

from forecaster.model import init_params
from forecaster.registry import Registry
from tests.service.conftest import API_KEY, TINY, make_settings, publish, running_client, server

KEY = {"X-API-Key": API_KEY}
HISTORY = {"history": [float(i % 24) for i in range(48)], "horizon": 2}


@pytest.fixture
def admin(tmp_path):
    root = tmp_path / "registry"
    publish(root, "m4-hourly")
    with running_client(make_settings(root)) as c:
        yield c, root


def _served_version(c) -> int:
    return c.post("/v1/forecast", json=HISTORY).json()["version"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": API_KEY + "x"}])
def test_wrong_or_missing_key_is_401(admin, headers):
    c, _ = admin
    assert c.post("/v1/models/m4-hourly/reload", headers=headers).status_code == 401


def test_reload_serves_the_moved_alias(admin):
    c, root = admin
    Registry(root).publish("m4-hourly", TINY, init_params(TINY, 1), promote=True)
    assert _served_version(c) == 1  # the watcher is off in these tests
    r = c.post("/v1/models/m4-hourly/reload", headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "m4-hourly", "version": 2, "previous": 1}
    assert _served_version(c) == 2


def test_promote_and_rollback(admin):
    c, root = admin
    Registry(root).publish("m4-hourly", TINY, init_params(TINY, 1))  # v2, not promoted
    r = c.post("/v1/models/m4-hourly/promote", json={"version": 2}, headers=KEY)
    assert r.status_code == 200, r.text
    assert Registry(root).alias("m4-hourly") == 2 and _served_version(c) == 2
    r = c.post("/v1/models/m4-hourly/rollback", headers=KEY)
    assert r.status_code == 200 and r.json()["version"] == 1
    assert Registry(root).alias("m4-hourly") == 1 and _served_version(c) == 1
    assert c.post("/v1/models/m4-hourly/rollback", headers=KEY).status_code == 409


@pytest.mark.parametrize("version", ["2", "../1", 1.5, None, 0, -1, True])
def test_promote_takes_plain_positive_integers(admin, version):
    c, _ = admin
    r = c.post("/v1/models/m4-hourly/promote", json={"version": version}, headers=KEY)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "version"]


def test_promote_unknown_version_or_model_is_404(admin):
    c, root = admin
    r = c.post("/v1/models/m4-hourly/promote", json={"version": 9}, headers=KEY)
    assert r.status_code == 404
    for action in ("reload", "rollback"):
        r = c.post(f"/v1/models/nope/{action}", headers=KEY)
        assert r.status_code == 404, r.text
        # The whole name, closing quote included; never the registry's location.
        assert "'nope'" in r.json()["detail"] and str(root) not in r.text
    assert not (root / "nope").exists()
    assert c.post("/v1/models/bad%20name/reload", headers=KEY).status_code == 422


def test_failed_load_keeps_the_old_version(admin):
    c, root = admin
    registry = Registry(root)
    version = registry.publish("m4-hourly", TINY, init_params(TINY, 1))
    (root / "m4-hourly" / str(version) / "weights.safetensors").write_bytes(b"corrupt")
    r = c.post("/v1/models/m4-hourly/promote", json={"version": version}, headers=KEY)
    assert r.status_code == 409, r.text
    assert "weights.safetensors" in r.text and str(root) not in r.text  # names, not paths
    assert registry.alias("m4-hourly") == 1 and _served_version(c) == 1
    # Even with the alias moved behind the service's back, a failed reload keeps v1 serving.
    aliases = root / "m4-hourly" / "aliases.json"
    data = json.loads(aliases.read_text())
    data["aliases"]["production"] = version
    aliases.write_text(json.dumps(data))
    assert registry.alias("m4-hourly") == version
    r = c.post("/v1/models/m4-hourly/reload", headers=KEY)
    assert r.status_code == 409 and "failed to load" in r.json()["detail"]
    assert _served_version(c) == 1


def test_admin_calls_are_refused_at_once_while_a_writer_holds_the_model(tmp_path):
    """Promote and rollback never queue behind another writer (a retraining job publishing):
    409 naming it, nothing done, no thread left waiting to act after the client gave up."""
    root = tmp_path / "registry"
    publish(root, "m4-hourly")
    registry = Registry(root)
    registry.publish("m4-hourly", TINY, init_params(TINY, 1), promote=True)  # v2, after v1
    registry.publish("m4-hourly", TINY, init_params(TINY, 2))  # v3, not promoted
    with server(root, tmp_path) as s:
        url = f"{s.url}/v1/models/m4-hourly"
        # Another process's writer, as the registry's lock writes it: "<pid> <what it does>".
        fd = os.open(root / "m4-hourly" / ".lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, b"4242 retraining: publishing a challenger\n")
        try:
            for action, body in (("promote", {"version": 3}), ("rollback", None)):
                # The old code waited for the lock with no limit: this timed out.
                r = httpx.post(f"{url}/{action}", json=body, headers=KEY, timeout=30)
                assert r.status_code == 409, r.text
                holder = "process 4242 (retraining: publishing a challenger)"
                assert holder in r.json()["detail"] and str(root) not in r.text
            assert registry.alias("m4-hourly") == 2
        finally:
            os.close(fd)
        r = httpx.post(f"{url}/rollback", headers=KEY, timeout=30)
        assert r.status_code == 200 and r.json() == {"model": "m4-hourly", "version": 1,
                                                     "previous": 2}  # fmt: skip
        assert registry.alias("m4-hourly") == 1


def test_an_admin_call_does_not_queue_behind_another_swap_of_the_model(tmp_path):
    """While this service is already swapping the model (the watcher loading a new version,
    another admin call), an admin call waits at most ADMIN_WAIT_S, then is refused by name."""
    from service.store import Busy, ModelStore

    root = tmp_path / "registry"
    publish(root, "m4-hourly")
    store = ModelStore(Registry(root), (1,))

    async def run() -> None:
        async with store._exclusive("m4-hourly", "loading version 5"):
            for call in (lambda: store.promote("m4-hourly", 1), lambda: store.rollback("m4-hourly"),
                         lambda: store.reload("m4-hourly")):  # fmt: skip
                with pytest.raises(Busy, match=r"busy \(loading version 5\); nothing was done"):
                    await call()
        assert (await store.reload("m4-hourly")).served.version == 1  # free again

    asyncio.run(run())
