"""The status page's files: its Jinja2 template rendered once, and its static script and style.

The only module that imports jinja2. The page carries no data (its script asks for the control token and fetches
the API), so it is rendered once, when the app is made; feeder/api.py serves it. The files are package data under
feeder/templates/ and feeder/static/.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import jinja2

StaticFiles = dict[str, tuple[bytes, str]]
"""File name → (bytes, content type)."""

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def static_files() -> StaticFiles:
    """feeder/static/*.js and *.css, read once."""
    folder = resources.files("feeder") / "static"
    return {
        item.name: (item.read_bytes(), _STATIC_TYPES[suffix])
        for item in folder.iterdir()
        if (suffix := "." + item.name.rpartition(".")[2]) in _STATIC_TYPES
    }


def render_page(static: StaticFiles) -> str:
    """The page, from templates/status.html. Its URLs are relative, so it works behind a proxy that serves it under
    a path of its own; asset URLs carry a hash of their bytes, so a new version is never taken from a cache."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("feeder", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    assets = {name: f"static/{name}?v={hashlib.sha256(body).hexdigest()[:12]}" for name, (body, _) in static.items()}
    return environment.get_template("status.html").render(assets=assets)
