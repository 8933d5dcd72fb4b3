"""``pureffcv studio``: a local page that shows what a spec does to the data, re-rendered in
a warm process each time the spec file is saved (``engine``: the renderer; ``server``: the
HTTP server and the file watcher; ``page.html``: the page, no external assets)."""
from .engine import Render, Studio
from .server import StudioServer, serve

__all__ = ["Render", "Studio", "StudioServer", "serve"]
