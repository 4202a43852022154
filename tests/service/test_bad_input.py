"""Bad input gets a 4xx JSON body naming the field; never a 500, a traceback, NaN or Infinity."""

from __future__ import annotations

import json

import pytest

GOOD = [float(i % 24) for i in range(60)]


def _history_with(value: str) -> bytes:
    """A body whose 4th history value is the raw JSON text ``value``."""
    values = [str(v) for v in GOOD]
    values[3] = value
    return ('{"history": [' + ", ".join(values) + '], "horizon": 2}').encode()


def _post(client, body: bytes, content_type: str = "application/json"):
    return client.post("/v1/forecast", content=body, headers={"content-type": content_type})


def _assert_refused(r, status: int, loc: list) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert detail[0]["loc"][: len(loc)] == loc
    assert "Traceback" not in r.text and "NaN" not in r.text and "Infinity" not in r.text


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "1e308",
        "1e16",
        '"12"',
        "true",
        "[1]",
        '{"a": 1}',
    ],
)
def test_bad_history_value_names_its_index(client, value):
    _assert_refused(_post(client, _history_with(value)), 422, ["body", "history", 3])


def test_null_is_a_missing_value_not_an_error(client):
    r = _post(client, _history_with("null"))
    assert r.status_code == 200, r.text
    assert r.json()["filled"] == 1


@pytest.mark.parametrize("value", ["NaN", "Infinity", '"12"', "true", "[1]", "1e400", "1e16"])
def test_a_bad_value_in_one_series_is_that_series_error(client, value):
    """Without ``strict``, the other series are answered; the error names the series and value."""
    bad = _history_with(value).decode().removeprefix('{"history": ').rsplit(', "horizon"')[0]
    body = f'{{"series": [{{"history": {json.dumps(GOOD)}}}, {{"id": "x", "history": {bad}}}],'
    r = _post(client, (body + ' "horizon": 2}').encode())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [f["id"] for f in answer["forecasts"]] == ["0"]
    (error,) = answer["errors"]
    assert (error["id"], error["index"]) == ("x", 1)
    assert error["loc"] == ["body", "series", 1, "history", 3]
    assert "NaN" not in r.text and "Infinity" not in r.text


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"history": [], "horizon": 1}, ["body", "history"]),
        ({"history": "1,2,3", "horizon": 1}, ["body", "history"]),
        ({"history": GOOD, "horizon": 0}, ["body", "horizon"]),
        ({"history": GOOD, "horizon": -3}, ["body", "horizon"]),
        ({"history": GOOD, "horizon": 2.5}, ["body", "horizon"]),
        ({"history": GOOD, "horizon": "2"}, ["body", "horizon"]),
        ({"history": GOOD}, ["body", "horizon"]),
        ({"history": GOOD, "horizon": 1, "model": "../etc/passwd"}, ["body", "model"]),
        ({"history": GOOD, "horizon": 1, "model": "m4-hourly@x"}, ["body", "model"]),
        ({"history": GOOD, "horizon": 1, "model": 3}, ["body", "model"]),
        ({"history": GOOD, "horizon": 1, "quantiles": [1.5]}, ["body", "quantiles", 0]),
        ({"history": GOOD, "horizon": 1, "quantiles": 0.5}, ["body", "quantiles"]),
        ({"history": GOOD, "horizon": 1, "timestamps": [1, 2]}, ["body", "timestamps", 0]),
        ({"history": GOOD, "horizon": 1, "surprise": 1}, ["body", "surprise"]),
        ({"horizon": 1}, ["body"]),
        ({"history": GOOD, "series": [{"history": GOOD}], "horizon": 1}, ["body"]),
        ({"series": [], "horizon": 1}, ["body", "series"]),
        ({"series": [{"id": "a"}], "horizon": 1, "strict": True}, ["body", "series", 0, "history"]),
        (
            {"series": [{"history": [1.0, "x"]}], "horizon": 1, "strict": True},
            ["body", "series", 0, "history", 1],
        ),
        ({"history": [None, None], "horizon": 1}, ["body", "history"]),
        ({"history": GOOD, "horizon": 1, "strict": "yes"}, ["body", "strict"]),
        ({"series": [{"history": GOOD}] * 51, "horizon": 1}, ["body", "series"]),
        ({"history": [1.0] * 10_001, "horizon": 1}, ["body", "history"]),
        ([1, 2, 3], ["body"]),
        ("history", ["body"]),
        (None, ["body"]),
    ],
)
def test_bad_body_names_the_field(client, body, loc):
    _assert_refused(_post(client, json.dumps(body).encode()), 422, loc)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"history": [1, 2,], "horizon": 1}', b"\xff\xfe", b"{'a': 1}", b"nul"]
)
def test_malformed_json_is_422(client, raw):
    _assert_refused(_post(client, raw), 422, ["body"])


def test_only_json_bodies_are_parsed(client):
    body = json.dumps({"history": GOOD, "horizon": 1}).encode()
    assert _post(client, body, "application/json; charset=utf-8").status_code == 200
    r = _post(client, body, "text/plain")
    assert r.status_code == 415 and r.json()["detail"][0]["loc"] == ["header", "content-type"]


def test_unknown_route_and_method(client):
    assert client.get("/v1/forecast").status_code == 405
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["detail"] == "Not Found"


def test_oversize_body_is_413_before_parsing(registry_root):
    from tests.service.conftest import make_settings, running_client

    with running_client(make_settings(registry_root, max_body_bytes=1000)) as c:
        big = json.dumps({"history": GOOD * 10, "horizon": 1}).encode()
        assert len(big) > 1000
        _assert_refused(_post(c, big), 413, ["body"])

        def chunks():  # no Content-Length: the limit must count streamed bytes
            for _ in range(10):
                yield b" " * 200

        r = c.post("/v1/forecast", content=chunks(), headers={"content-type": "application/json"})
        _assert_refused(r, 413, ["body"])
        small = json.dumps({"history": GOOD, "horizon": 1}).encode()
        assert len(small) < 1000 and _post(c, small).status_code == 200
