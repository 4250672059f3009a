"""A real OpenAI-compatible chat-completions server on loopback, for tests (no other network).

``ChatServer(respond)`` listens on 127.0.0.1 at an ephemeral port in a background thread and answers
``POST /v1/chat/completions``. ``respond(body, n)`` gets the parsed JSON request and its 0-based number
and returns a :class:`Reply` (status, JSON payload or raw text, headers, delay before answering). Every
request is recorded (``requests``, ``auth``), and the peak number of concurrent requests is tracked.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    payload: dict | str = ""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


def completion(content: str, model: str = "test-model") -> dict:
    """A chat-completions reply body, as OpenAI's API and vLLM send it."""
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


class ChatServer:
    def __init__(self, respond):
        self.respond = respond
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                if self.path != "/v1/chat/completions":
                    self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server._lock:
                    n = len(server.requests)
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.respond(body, n)
                    time.sleep(reply.delay)
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, reply: Reply):
                data = (json.dumps(reply.payload) if isinstance(reply.payload, dict) else reply.payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
