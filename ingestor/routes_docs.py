"""GET /docs: the API reference, Swagger UI rendering this node's own /openapi.json.

Public, like the document it renders. Everything the page loads comes from the node:
Swagger UI's script and stylesheet from the `swagger-ui-bundle-v2` package, served under
/docs/ with a content hash in their URL (so a week of caching is safe), and the few lines
that start it. The page's Content-Security-Policy admits this origin only. The assets
are read and compressed once, in a thread, on the first request for one.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

routes = web.RouteTableDef()

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
ASSET_CACHE = "public, max-age=604800"
_JS = "text/javascript"
# Relative URLs throughout, so the page also works behind a proxy that adds a prefix.
_START = b"""\
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null
});
"""
# name -> (content type, where it comes from: a file of the bundle, or these bytes)
_SOURCES: dict[str, tuple[str, str | bytes]] = {
    "swagger-ui.css": ("text/css", "swagger-ui.css"),
    "swagger-ui-bundle.js": (_JS, "swagger-ui-bundle.js"),
    "docs.js": (_JS, _START),
}
ASSETS = {name: content_type for name, (content_type, _) in _SOURCES.items()}
_HEADERS = {"X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = {**_HEADERS, "Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                 "Referrer-Policy": "same-origin"}


@dataclass(frozen=True, slots=True)
class Asset:
    content_type: str
    body: bytes
    gzipped: bytes
    digest: str

    def __repr__(self) -> str:
        return f"Asset({self.content_type}, {len(self.body)} bytes, {self.digest})"


def load_assets(root: Path = swagger_ui_path) -> dict[str, Asset]:
    assets = {}
    for name, (content_type, source) in _SOURCES.items():
        body = source if isinstance(source, bytes) else (root / source).read_bytes()
        assets[name] = Asset(content_type, body, gzip.compress(body, 6, mtime=0),
                             hashlib.sha256(body).hexdigest()[:16])
    return assets


_LOADED: dict[str, Asset] = {}


async def _assets() -> Mapping[str, Asset]:
    if not _LOADED:
        _LOADED.update(await asyncio.to_thread(load_assets))
    return _LOADED


def _page(assets: Mapping[str, Asset]) -> str:
    def url(name: str) -> str:
        return f"docs/{name}?v={assets[name].digest}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>triggerd API reference</title>
<link rel="stylesheet" href="{url("swagger-ui.css")}">
<link rel="icon" href="data:,">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{url("swagger-ui-bundle.js")}"></script>
<script src="{url("docs.js")}"></script>
</body>
</html>
"""


@routes.get("/docs")
async def page(request: web.Request) -> web.Response:
    return web.Response(text=_page(await _assets()), content_type="text/html",
                        headers=_PAGE_HEADERS)


def accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


async def asset(request: web.Request) -> web.Response:
    found = (await _assets())[request.path.rsplit("/", 1)[-1]]
    gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    etag = found.digest + ("-gzip" if gzipped else "")
    headers = {**_HEADERS, "Cache-Control": ASSET_CACHE, "Vary": "Accept-Encoding",
               "ETag": f'"{etag}"'}
    if any(tag.value in (etag, "*") for tag in request.if_none_match or ()):
        return web.Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=found.gzipped if gzipped else found.body, headers=headers,
                        content_type=found.content_type, charset="utf-8")


for _name in ASSETS:
    routes.get(f"/docs/{_name}")(asset)
