"""The studio's web server: Python's own ``http.server`` on 127.0.0.1, one page, a JSON API.

Why the standard library and not an ASGI stack: the page is one local user polling a JSON
endpoint twice a second, so a ThreadingHTTPServer is enough, adds no dependency to pureffcv's
install, and starts in milliseconds in the same warm process that holds the compiled ops.

Routes: ``GET /`` the page; ``GET /api/state`` the last render's summary (version, busy,
errors, explain, timings, class list, spec text); ``GET /api/image/<version>/<kind>/<i>.png``
one image of that render (``original``, ``augmented``, ``view<k>``: view copy k of a split with
views, in the batch's order, or ``step<k>``); ``POST /api/draw``
``{"mode": "new"|"same"}``; ``POST /api/classes`` ``{"classes": [..]}``.

A watcher thread polls the spec file (mtime, size and content) and re-renders on change.
"""
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

from ..preview import smallest_size
from .engine import Render, Studio
from .images import png, zoom_for

PAGE = Path(__file__).with_name("page.html")
#: seconds between two looks at the spec file
POLL_S = 0.25
#: how long a changed spec file must stay the same before it is rendered (a write in progress)
SETTLE_S = 0.05


class StudioServer:
    """A Studio, its watcher thread and its HTTP server; ``start()`` returns at once,
    ``url`` is where the page is, ``stop()`` ends both threads."""

    def __init__(self, studio: Studio, port: int = 8765, host: str = "127.0.0.1"):
        self.studio = studio
        self.busy = False
        self._stop = threading.Event()
        self._work = threading.Condition()
        self._pending: list = []  # actions for the render thread: ("render"|"new"|..., arg)
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self._threads = []

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "StudioServer":
        for target in (self.httpd.serve_forever, self._watch, self._renderer):
            thread = threading.Thread(target=target, daemon=True, name=f"studio-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        self.request("render")
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._work:
            self._work.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def request(self, action: str, arg=None) -> None:
        """Queue a render (``render``, ``new``, ``same``, ``classes``); a burst of saves
        collapses into one render of the latest file."""
        with self._work:
            if action == "render" and ("render", None) in self._pending:
                return
            self._pending.append((action, arg))
            self.busy = True
            self._work.notify_all()

    def _renderer(self) -> None:
        while not self._stop.is_set():
            with self._work:
                while not self._pending and not self._stop.is_set():
                    self._work.wait(timeout=1.0)
                if self._stop.is_set():
                    return
                action, arg = self._pending.pop(0)
            if action == "new":
                self.studio.epoch += 1
            elif action == "classes":
                chosen = [int(c) for c in arg if int(c) in self.studio.all_classes]
                self.studio.classes = chosen or list(self.studio.all_classes)
            self.studio.render()
            with self._work:
                self.busy = bool(self._pending)

    def _watch(self) -> None:
        """Render again when the spec file changes, once it has settled: an editor that
        truncates the file and then writes it must not show a transient "the spec is empty"."""
        path = self.studio.spec_path
        seen = _signature(path)
        while not self._stop.wait(POLL_S):
            now = _signature(path)
            if now == seen:
                continue
            while not self._stop.wait(SETTLE_S):
                again = _signature(path)
                if again == now:
                    break
                now = again
            seen = now
            self.request("render")

    def state(self) -> dict:
        render: Optional[Render] = self.studio.last
        if render is None:
            return {"version": 0, "busy": True, "spec": str(self.studio.spec_path)}
        zoom = _zoom(render) if render.augmented is not None else 1
        return {
            "version": render.version, "busy": self.busy, "spec": str(self.studio.spec_path),
            "beton": self.studio.beton, "split": self.studio.split, "epoch": render.epoch,
            "spec_text": render.spec_text, "errors": render.errors, "explain": render.explain,
            "seconds": round(render.seconds, 3), "compiled_steps": render.compiled_steps,
            "reused_steps": render.reused_steps, "zoom": zoom, "stale": render.stale,
            "classes": render.classes, "all_classes": render.all_classes,
            "class_names": {str(k): v for k, v in render.class_names.items()},
            "views": [caption for caption, _ in render.views],
            "samples": [{"index": i, "label": label}
                        for i, label in zip(render.indices, render.labels)]
            if render.augmented is not None else [],
            "steps": [{"name": s.name, "stage": s.stage, "op": s.op, "line": s.line,
                       "output": s.output, "image": s.images is not None,
                       "us_per_image": None if s.us_per_image is None else round(s.us_per_image, 1),
                       "compiled": s.compiled, "compile_s": round(s.compile_s, 3),
                       "view": s.view}
                      for s in render.steps],
        }

    def image(self, version: int, kind: str, i: int) -> Optional[bytes]:
        render = self.studio.last
        if render is None or render.version != version or render.augmented is None:
            return None
        zoom = _zoom(render)
        overlays = None
        if kind == "original":
            batch, overlays = render.originals, render.original_overlays
        elif kind == "augmented":
            batch, overlays = render.augmented, render.augmented_overlays
        elif kind.startswith("view") and kind[4:].isdigit() and int(kind[4:]) < len(render.views):
            batch = render.views[int(kind[4:])][1]
        elif kind.startswith("step") and kind[4:].isdigit() and int(kind[4:]) < len(render.steps):
            batch = render.steps[int(kind[4:])].images
        else:
            return None
        if batch is None or not 0 <= i < len(batch):
            return None
        return png(batch[i], zoom, overlays[i] if overlays else None, render.box_names,
                   render.box_offset)


def _zoom(render: Render) -> int:
    """One zoom for every image of a render: the one that shows the smallest (a split's
    augmented images, or its smallest view copy) at a readable size, so that sizes compare."""
    return zoom_for(smallest_size([render.augmented, *(images for _, images in render.views)]))


def _signature(path: Path):
    try:
        stat = path.stat()
        return stat.st_mtime_ns, stat.st_size, path.read_bytes()
    except OSError:
        return None


def _handler(server: StudioServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the terminal shows the URL only
            pass

        def _send(self, body: bytes, kind: str, status=HTTPStatus.OK):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value, status=HTTPStatus.OK):
            self._send(json.dumps(value).encode(), "application/json", status)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path in ("/", "/index.html"):
                return self._send(PAGE.read_bytes(), "text/html; charset=utf-8")
            if path == "/api/state":
                return self._json(server.state())
            parts = path.strip("/").split("/")
            if len(parts) == 5 and parts[:2] == ["api", "image"] and parts[4].endswith(".png"):
                try:
                    body = server.image(int(parts[2]), parts[3], int(parts[4][:-4]))
                except ValueError:
                    body = None
                if body is not None:
                    return self._send(body, "image/png")
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self._json({"error": "bad JSON"}, HTTPStatus.BAD_REQUEST)
            if self.path == "/api/draw":
                server.request("new" if body.get("mode") == "new" else "same")
            elif self.path == "/api/classes":
                server.request("classes", list(body.get("classes") or []))
            else:
                return self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            self._json({"queued": True})

    return Handler


def serve(spec, beton, split: str = "train", n: int = 16, port: int = 8765,
          device: str = "cpu", epoch: int = 0, host: str = "127.0.0.1") -> StudioServer:
    """Start the studio for ``spec`` over ``beton`` and return the running server (its
    threads are daemons: the caller keeps the process alive, e.g. ``wait_forever``)."""
    studio = Studio(spec, beton, split=split, n=n, device=device, epoch=epoch)
    return StudioServer(studio, port=port, host=host).start()


def wait_forever(server: StudioServer) -> None:
    """Sleep until Ctrl-C, then stop the server. Short sleeps: a signal delivered to another
    thread (Numba's, FFCV's) does not interrupt the main thread's sleep, only its next check."""
    try:
        while True:
            time.sleep(0.2)
    finally:
        server.stop()
