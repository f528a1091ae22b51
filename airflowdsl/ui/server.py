"""Bind a port and serve the UI with uvicorn (``airflowdsl ui``)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

from airflowdsl.errors import LoadError
from airflowdsl.ui.data import StoreView

DEFAULT_PORT = 8265
PORT_TRIES = 20


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on ``host:port``; with ``port`` None, the first free port from
    8265 on (8265 is also Ray's dashboard: a running Ray pushes us to 8266).

    Raises:
        LoadError: the port is taken (or none of the 20 tried is free), or ``host`` is not
            an address of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES)
    last: OSError | None = None
    for p in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, p))
        except OSError as err:
            sock.close()
            last = err
            if err.errno != errno.EADDRINUSE:
                raise LoadError(f"cannot listen on {host}:{p}: {err.strerror}") from None
            continue
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    where = f"port {port}" if port is not None else \
        f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORT_TRIES - 1}"
    raise LoadError(f"cannot listen on {host}: {where} in use ({last})")


def serve(store: str | None, host: str = "127.0.0.1", port: int | None = None,
          announce: Callable[[str], None] = print) -> None:
    """Serve the UI of ``store`` until interrupted.

    Raises:
        LoadError: the store does not exist, or the port cannot be bound.
    """
    import uvicorn

    from airflowdsl.ui.app import create_app

    view = StoreView.open(store)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    announce(f"airflowdsl ui: http://{shown}:{sock.getsockname()[1]}/  (store {view.root}; "
             "read-only; Ctrl-C stops)")
    config = uvicorn.Config(create_app(view), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        view.close()
        sock.close()


__all__ = ["DEFAULT_PORT", "bind", "serve"]
