"""The listening socket of a local server (review.py, retrieval.py serve), bound before anything slow starts.

uvicorn binds only once it runs, after the app (and a model) has loaded, and reports a port in use with its own lines
and exit 3; binding here first makes it one `error:` line and exit 2 at once. uvicorn then serves on this socket.
"""

from __future__ import annotations

import errno
import socket

from vlmkit.io import InputError


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, inheritable (uvicorn may serve it from a worker process)."""
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: must be 1..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does; a listening socket still blocks
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        what = ("in use (port already in use: another server listens there)" if exc.errno == errno.EADDRINUSE
                else exc.strerror or str(exc))
        raise InputError(f"--host {host} --port {port}: cannot listen: {what}; choose another --port") from None
    sock.set_inheritable(True)
    return sock
