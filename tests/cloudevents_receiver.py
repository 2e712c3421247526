"""A real HTTP receiver of CloudEvents (binary content mode) on a loopback port, for the payload
log's tests: it keeps every event it answered 200 to, and can be stopped and started again on
the same port (a sink that is down for a while)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ReceivedEvent:
    """One CloudEvent as it arrived: its ce-* headers (lower-case names) and its JSON body."""

    headers: dict[str, str]
    body: Any

    @property
    def type(self) -> str:
        return self.headers.get("ce-type", "")

    @property
    def id(self) -> str:
        return self.headers.get("ce-id", "")


class CloudEventsReceiver:
    """Accepts POSTs on http://127.0.0.1:<port>/events; `stop()` closes the port, `start()` reopens it.

    Each answer closes its connection (HTTP/1.0), so a stopped receiver refuses the very next
    POST; `keep_alive` answers HTTP/1.1 on kept-alive connections instead, as a production
    receiver would (for benchmarks: a stopped one still serves the connections already open)."""

    def __init__(self, keep_alive: bool = False) -> None:
        self.keep_alive = keep_alive
        with socket.socket() as probe:  # a free port, kept across stop/start
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.events: list[ReceivedEvent] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:  # http.server calls it by this name
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                headers = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith(("ce-", "content-"))}
                with receiver._lock:
                    receiver.events.append(ReceivedEvent(headers, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # how many events so far (for a receiver in another process)
                body = json.dumps({"events": len(receiver.events)}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of_type(self, ce_type: str) -> list[ReceivedEvent]:
        with self._lock:
            return [event for event in self.events if event.type == ce_type]


if __name__ == "__main__":  # `python -m tests.cloudevents_receiver`: a kept-alive receiver until SIGTERM
    import signal
    import sys

    served = CloudEventsReceiver(keep_alive=True)
    served.start()
    print(served.url, flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    served.stop()
    sys.exit(0)
