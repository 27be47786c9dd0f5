"""The console's client facing answers that are not the API's own (Serve's proxy, a replica that
died mid-request): over real HTTP from a plain server on loopback that answers as they do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from console.client import ApiClient, ApiError

ANSWERS = {  # path -> (status, plain-text body), as Serve's proxy answers when no replica does
    "/v1/health": (500, "Internal Server Error"),
    "/v1/persons": (503, ""),
    "/v1/persons/7": (404, "Not Found"),
}


class _Plain(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        status, text = ANSWERS[self.path.split("?")[0]]
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = _answer

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def plain_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Plain)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_that_is_not_the_apis_says_what_happened(plain_server: str):
    client = ApiClient(plain_server, "k")
    with pytest.raises(ApiError) as died:
        client.health()
    assert died.value.status == 500 and died.value.code == "http_error"
    said = died.value.friendly()
    assert said.startswith("HTTP 500: Internal Server Error") and "may or may not have been stored" in said
    with pytest.raises(ApiError) as unavailable:
        client.persons()
    assert unavailable.value.message.startswith("HTTP 503 (the service did not finish")  # no body: no colon
    with pytest.raises(ApiError) as missing:
        client.rename(7, "X")
    assert missing.value.message == "HTTP 404: Not Found"  # not a server failure: no warning about stored changes
