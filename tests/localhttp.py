"""Real HTTP on 127.0.0.1 for the tests of downloads: a folder served, a server that never
answers, a port nobody listens on."""
import contextlib
import functools
import http.server
import socket
import threading
from pathlib import Path


@contextlib.contextmanager
def serve(folder: Path):
    """An HTTP server for `folder`; yields its base URL (no trailing slash)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A URL whose connections are refused: the port was free a moment ago, nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@contextlib.contextmanager
def silent_server():
    """Accepts connections and never answers: a firewall that drops, or a hung proxy."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
