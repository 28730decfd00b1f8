"""Loopback stand-ins for the Hugging Face and ModelScope hubs, serving one model folder (tests only).

They answer exactly the requests the installed clients make for `snapshot_download` (found by reading
huggingface_hub/_snapshot_download.py, file_download.py and modelscope_hub/_download.py, and checked by logging):

Hugging Face: GET /api/models/<repo>/revision/<rev> (commit sha), GET /api/models/<repo>/tree/<sha>?recursive=true
(file list), HEAD + GET /<repo>/resolve/<sha>/<file> (X-Repo-Commit, ETag, Content-Length; Range for a resume).
ModelScope: GET /api/v1/models/<repo>/repo/files?Revision=..&Recursive=True ({"Data": {"Files": [...]}} with Path,
Size, Sha256), GET /api/v1/models/<repo>/repo?Revision=..&FilePath=<file> (Range for a resume).
Anything else is a 404. Only 127.0.0.1 is bound.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """`with HubServer("hf", folder, "Qwen/Qwen2.5-3B-Instruct") as hub: hub.url ...`"""

    def __init__(self, kind: str, folder: Path, repo_id: str, cut_once: tuple[str, ...] = ()):
        self.kind, self.folder, self.repo_id = kind, Path(folder), repo_id
        self.files = sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())
        self.cut_once = set(cut_once)  # files whose first full GET is cut off half-way (a dropped connection)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                server._handle(self, head=True)

            def do_GET(self) -> None:
                server._handle(self, head=False)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ---- responses --------------------------------------------------------------------------------------------
    def _json(self, handler: BaseHTTPRequestHandler, obj: object) -> None:
        body = json.dumps(obj).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _missing(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(404)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _file(self, handler: BaseHTTPRequestHandler, name: str, head: bool, headers: dict[str, str]) -> None:
        if name not in self.files:
            return self._missing(handler)
        data = (self.folder / name).read_bytes()
        rng = handler.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng and rng.startswith("bytes=") else 0
        handler.send_response(206 if start else 200)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if head:
            return
        if name in self.cut_once and not start:
            self.cut_once.discard(name)
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(data[start:])

    def _handle(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        url = urlparse(handler.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.requests.append((handler.command, handler.path, handler.headers.get("Range")))
        if self.kind == "hf":
            if path.startswith(f"/api/models/{self.repo_id}/revision/"):
                return self._json(handler, {"id": self.repo_id, "sha": COMMIT,
                                            "siblings": [{"rfilename": f} for f in self.files]})
            if path.startswith(f"/api/models/{self.repo_id}/tree/"):
                return self._json(handler, [{"type": "file", "path": f, "size": (self.folder / f).stat().st_size,
                                             "oid": hashlib.sha1((self.folder / f).read_bytes()).hexdigest()}
                                            for f in self.files])
            prefix = f"/{self.repo_id}/resolve/"
            if path.startswith(prefix):
                name = path[len(prefix):].partition("/")[2]
                etag = hashlib.sha1((self.folder / name).read_bytes()).hexdigest() if name in self.files else ""
                return self._file(handler, name, head, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'})
        else:
            if path == f"/api/v1/models/{self.repo_id}/repo/files":
                files = [{"Type": "blob", "Path": f, "Name": Path(f).name, "Size": (self.folder / f).stat().st_size,
                          "Sha256": hashlib.sha256((self.folder / f).read_bytes()).hexdigest()} for f in self.files]
                return self._json(handler, {"Code": 200, "Success": True, "Data": {"Files": files}})
            if path == f"/api/v1/models/{self.repo_id}/repo":
                return self._file(handler, query.get("FilePath", [""])[0], head, {})
        return self._missing(handler)


class SilentServer:
    """A hub stand-in that accepts every connection and never answers (a stuck proxy or overloaded mirror):
    `with SilentServer() as url: ...`. Only 127.0.0.1 is bound."""

    def __init__(self) -> None:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections.append(conn)  # held open, never read from or written to

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self._sock.close()
