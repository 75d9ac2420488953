"""A response body decodes to the value `response.json()` gives, or fails where it
fails, whether orjson or the json module decodes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from zoom_ingest.zoom.client import _decode_json, _json_object


def _response(
    content: bytes, content_type: str | None = "application/json;charset=UTF-8"
) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = content
    response.headers = CaseInsensitiveDict({"Content-Type": content_type} if content_type else {})
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    return response


BODIES = [
    b'{"activity_logs":[{"email":"a@b.c","time":"2026-01-01T00:00:00Z","n":3}],"page_size":300}',
    b'{"a":1,"a":2}',  # a duplicate key: the last wins
    b'{"big":123456789012345678901234567890}',  # beyond 64 bits: json keeps it exact
    b'{"big":-9999999999999999999,"x":18446744073709551616}',
    b'{"f":1.0000000000000000000001,"g":0.1,"h":-0.0,"i":1e5}',
    b'{"nan":NaN,"inf":Infinity,"m":-Infinity}',  # json accepts these, orjson does not
    b'{"huge":1e400}',
    b'{"s":"\\ud800"}',  # a lone surrogate escape
    b'{"s":"caf\xc3\xa9 \xe2\x82\xac"}',
    b'{"s":"bad \xff utf-8"}',  # replaced by requests, refused by orjson
    b'\xef\xbb\xbf{"bom":1}',
    b' {"padded":true} ',
    b"[1,2,3]",
    b'"text"',
    b"<html>proxy error</html>",
    b'{"truncated":',
    b"",
]


def _expected(response: requests.Response) -> tuple[str, Any]:
    try:
        return "value", response.json()
    except ValueError as exc:
        return "error", type(exc).__name__


def _actual(response: requests.Response) -> tuple[str, Any]:
    try:
        return "value", _decode_json(response)
    except ValueError as exc:
        return "error", type(exc).__name__


@pytest.mark.parametrize(
    "content_type",
    ["application/json;charset=UTF-8", "application/json", None, "text/plain; charset=ISO-8859-1"],
)
@pytest.mark.parametrize("body", BODIES)
def test_decoding_matches_requests(body: bytes, content_type: str | None) -> None:
    expected = _expected(_response(body, content_type))
    actual = _actual(_response(body, content_type))
    # NaN is not equal to itself: compare the JSON texts of the values.
    assert json.dumps(actual) == json.dumps(expected)
    assert type(actual[1]) is type(expected[1])


def test_big_integers_stay_exact() -> None:
    body = _json_object(_response(b'{"n":123456789012345678901234567890}'))
    assert body == {"n": 123456789012345678901234567890}
    assert isinstance(body["n"], int)


def test_non_objects_and_garbage_are_no_object() -> None:
    for content in (b"[1]", b"<html/>", b"", b'{"a":'):
        assert _json_object(_response(content)) is None


def test_an_ordinary_page_does_not_go_through_the_json_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    response = _response(BODIES[0])

    def no_fallback() -> Any:
        raise AssertionError("decoded by response.json()")

    monkeypatch.setattr(response, "json", no_fallback)
    assert _decode_json(response) == json.loads(BODIES[0])
