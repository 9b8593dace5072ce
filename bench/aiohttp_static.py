"""aiohttp's web.static over a folder: the Python reference point in bench/serve.py.

Usage: python bench/aiohttp_static.py FOLDER PORT
"""

from __future__ import annotations

import sys

from aiohttp import web


def main() -> None:
    app = web.Application()
    app.router.add_static("/", sys.argv[1])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)


if __name__ == "__main__":
    main()
