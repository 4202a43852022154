"""``/docs`` works offline (issue 34, item 11): Swagger UI's files come from the service itself,
never from a CDN."""

from __future__ import annotations

import re


def test_docs_load_swagger_ui_from_the_service_itself(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert "cdn" not in page.text.lower()
    for path in sources:
        r = client.get(path)
        assert r.status_code == 200 and len(r.content) > 100, path
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")
