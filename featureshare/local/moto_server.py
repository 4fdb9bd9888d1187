"""moto's server mode, request hooks and wire types (moto is pinned; see ``moto_internals.MOTO_VERSION``).

moto-private names are touched only in two modules: ``featureshare.local.moto_internals`` (backends, routing
tables, route handlers) and this one (``DomainDispatcherApplication``, ``botocore_stubber``, werkzeug's
``MotoRequestHandler``, ``get_account_id_from``); ``tests/local/test_moto_contract.py`` covers both, so a moto
upgrade that moves a name fails there. ``moto_internals`` re-exports every public name of this module and is
what the rest of ``featureshare.local`` imports; this module never imports ``moto_internals`` (the dependency
runs one way, so there is no import cycle).

Wire types
    ``WireRequest``, ``WireResponse``, ``Handler``, ``json_response``, ``error_response``,
    ``account_of_access_key`` (the account moto attributes to an access key), and the SigV4
    ``CREDENTIAL_SCOPE`` and runtime ``RUNTIME_PATH`` patterns (shared with the policy enforcer).

Request filter (both modes)
    ``set_request_filter(filter)``: every signed request goes through ``filter(RawRequest, proceed)``
    (``_install_request_hooks`` wraps moto's in-process ``botocore_stubber.process_request`` and the server's
    ``DomainDispatcherApplication.__call__``; ``moto_internals.install_routes`` installs them).
Server mode (``EmbeddedServer``, ``start_server``/``stop_server``)
    moto's WSGI app on werkzeug's threaded server with HTTP/1.1 keep-alive (``ThreadedMotoServer`` closes
    every connection). Feature Store runtime requests (its paths, signed for ``sagemaker``) go straight to the
    runtime handler (``_install_request_hooks(runtime_handler)``), past ``DomainDispatcherApplication``,
    whose per-request global lock serialised them; the request filter still sees them. Measured at C=8 with
    10 ms latency: server CPU per ingested row ~250 -> ~120 us, and C=32 is no longer slower than C=8.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- wire

WireResponse = tuple[int, dict[str, str], str]


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request as the emulated services see it."""

    account: str
    region: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    target: str = ""

    def json(self) -> dict[str, Any]:
        return json.loads(self.body or b"{}") if self.body.strip() else {}


Handler = Callable[[WireRequest], WireResponse | None]


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> WireResponse:
    """A JSON wire response; datetimes become epoch seconds as AWS JSON protocols send them."""
    def default(value: Any) -> Any:
        if isinstance(value, _dt.datetime):
            return value.timestamp()
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    out = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": str(uuid.uuid4())}
    out.update(headers or {})
    return status, out, json.dumps(body, default=default)


def error_response(status: int, code: str, message: str) -> WireResponse:
    """An AWS JSON error: code in ``__type`` and ``x-amzn-ErrorType`` so botocore raises ClientError(code)."""
    return json_response(status, {"__type": code, "message": message, "Message": message},
                         {"x-amzn-ErrorType": code})


def account_of_access_key(access_key_id: str) -> str:
    """The account moto attributes to an access key (assumed-role keys belong to the role's account)."""
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key_id)


# --------------------------------------------------------------------------------------------------- request hooks

@dataclass(frozen=True)
class RawRequest:
    """One signed HTTP request before moto sees it (header names lower-cased), for the request filter."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


#: ``filter(request, proceed)``: return ``proceed()`` (moto's answer, possibly inspected) or a refusal.
RequestFilter = Callable[[RawRequest, Callable[[], Any]], Any]
_request_filter: RequestFilter | None = None


def set_request_filter(request_filter: RequestFilter | None) -> None:
    """Route every request of both modes through ``request_filter`` (``None`` switches filtering off)."""
    global _request_filter
    _request_filter = request_filter


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    if all(hasattr(body, name) for name in ("read", "seek", "tell")):  # never consume a one-shot stream
        position = body.tell()
        data = body.read()
        body.seek(position)
        return data if isinstance(data, bytes) else str(data).encode()
    return b""


def _install_request_hooks(runtime_handler: Callable[[], Handler | None]) -> tuple[Any, Any]:
    """Wrap moto's in-process stubber and the server's WSGI entry point; returns what to restore.

    ``runtime_handler()`` is the installed featurestore-runtime handler (``None`` when none is), asked per
    server request: runtime requests go straight to it, past moto's dispatcher.
    """
    from moto.core.models import botocore_stubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original_process = botocore_stubber.process_request
    original_call = DomainDispatcherApplication.__dict__["__call__"]

    def process_request(request: Any) -> Any:
        request_filter = _request_filter
        if request_filter is None:
            return original_process(request)
        headers = {k.lower(): v.decode("latin-1") if isinstance(v, bytes) else str(v)
                   for k, v in request.headers.items()}
        raw = RawRequest(request.method, request.url, headers, _body_bytes(request.body))
        return request_filter(raw, lambda: original_process(request))

    def _runtime_app(app: Any, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return _runtime_wsgi(runtime_handler(), environ, start_response)

    def wsgi_call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        # Runtime calls skip moto's dispatcher: it holds one global lock per request while it scans every
        # backend's URL patterns, which serialised concurrent BatchWriteRecord calls.
        answer = _runtime_app if _is_runtime_request(runtime_handler(), environ) else original_call
        request_filter = _request_filter
        if request_filter is None:
            return answer(self, environ, start_response)
        return _filtered_wsgi(request_filter, lambda: answer, self, environ, start_response)

    botocore_stubber.process_request = process_request  # type: ignore[method-assign]
    DomainDispatcherApplication.__call__ = wsgi_call  # type: ignore[method-assign]
    return original_process, original_call


def _uninstall_request_hooks(saved: tuple[Any, Any]) -> None:
    from moto.core.models import botocore_stubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    botocore_stubber.__dict__.pop("process_request", None)
    DomainDispatcherApplication.__call__ = saved[1]  # type: ignore[method-assign]


def _call_wsgi(app: Callable[[dict[str, Any], Any], Any],
               environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI ``app`` on ``environ`` and collect its answer: status line, headers, whole body.

    Headers stay a list: a dict would merge repeated headers.
    """
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.update(status=status, headers=headers)
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return str(captured["status"]), list(captured["headers"]), b"".join(chunks)


def _filtered_wsgi(request_filter: RequestFilter, original: Callable[[], Any], app: Any,
                   environ: dict[str, Any], start_response: Any) -> Any:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    body = stream.read(int(length)) if length.isdigit() else (stream.read() if environ.get(
        "wsgi.input_terminated") else b"")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = environ.get("QUERY_STRING", "")
    url = (f"{environ.get('wsgi.url_scheme', 'http')}://{headers.get('host', 'localhost')}"
           f"{environ.get('PATH_INFO', '')}{'?' + query if query else ''}")

    def proceed() -> tuple[int, list[tuple[str, str]], bytes]:
        status_line, response_headers, response_body = _call_wsgi(
            lambda env, start: original()(app, env, start), environ)
        return int(status_line.split()[0]), response_headers, response_body

    status, out_headers, out_body = request_filter(RawRequest(environ["REQUEST_METHOD"], url, headers, body),
                                                   proceed)
    payload = out_body if isinstance(out_body, bytes) else str(out_body).encode()
    pairs = [(k, str(v)) for k, v in (out_headers.items() if isinstance(out_headers, dict) else out_headers)]
    if not any(k.lower() == "content-length" for k, _ in pairs):  # HEAD answers keep the object's length
        pairs.append(("Content-Length", str(len(payload))))
    start_response(f"{status} {HTTPStatus(status).phrase}", pairs)
    return [payload]


#: The Feature Store runtime's request paths (its requests are signed for ``sagemaker``).
RUNTIME_PATH = re.compile(r"^/(?:FeatureGroup/.+|BatchGetRecord|BatchWriteRecord)$")
#: access key id, region, service (groups 1-3) of a SigV4 credential scope (``Authorization`` header, or
#: ``"Credential=" + X-Amz-Credential`` of a presigned URL)
CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/[^/,]+/([^/,]+)/([^/,]+)/")


def _is_runtime_request(runtime: Handler | None, environ: dict[str, Any]) -> bool:
    """A featurestore-runtime request: one of its paths, signed for ``sagemaker`` (its signing name)."""
    if runtime is None or not RUNTIME_PATH.match(environ.get("PATH_INFO") or ""):
        return False
    match = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION") or "")
    return match is not None and match.group(3).lower() == "sagemaker"


def _runtime_wire_request(environ: dict[str, Any]) -> WireRequest:
    """The WireRequest moto's ``BaseResponse`` would give, read straight from the WSGI environ.

    Account as moto decides it (``MOTO_ACCOUNT_ID``, then ``x-moto-account-id``, then the access key's
    owner); region from the signature's credential scope (what SigV4 signed; a server URL has none).
    """
    key, region, _ = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION") or "").groups()  # type: ignore[union-attr]
    account = (os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
               or account_of_access_key(key))
    raw_path = (environ.get("RAW_URI") or environ.get("PATH_INFO") or "").split("?", 1)[0]
    length = environ.get("CONTENT_LENGTH") or ""
    body = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    return WireRequest(account=account, region=region, method=environ["REQUEST_METHOD"], path=unquote(raw_path),
                       query=parse_qs(environ.get("QUERY_STRING") or "", keep_blank_values=True),
                       headers=headers, body=body)


def _runtime_wsgi(runtime: Handler | None, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answer a runtime request straight from the handler (no moto dispatcher, no Flask app)."""
    if runtime is None:
        status, headers, body = error_response(503, "ServiceUnavailable", "featurestore-runtime is not running")
    else:
        wire = _runtime_wire_request(environ)
        answer = runtime(wire)
        status, headers, body = answer or error_response(404, "UnknownOperationException", wire.path)
    payload = body if isinstance(body, bytes) else str(body).encode()
    pairs = [(k, str(v)) for k, v in headers.items() if k.lower() != "content-length"]
    start_response(f"{status} {HTTPStatus(status).phrase}", [*pairs, ("Content-Length", str(len(payload)))])
    return [payload]


# --------------------------------------------------------------------------------------------------- server mode

#: An idle keep-alive connection is closed after this long; botocore opens a new one when it needs one.
KEEPALIVE_IDLE_TIMEOUT_S = 120.0


class EmbeddedServer:
    """moto's WSGI app on werkzeug's threaded server, speaking HTTP/1.1 with keep-alive.

    ``ThreadedMotoServer`` serves through werkzeug's ``run_wsgi``, which closes every connection after one
    response (and then waits up to 10 ms draining the socket), so each call paid a TCP connect. Here each
    connection gets a thread that answers requests until the client closes it, it idles for
    ``KEEPALIVE_IDLE_TIMEOUT_S``, or the server stops (open connections are shut down then).

    Limits: request bodies and responses are held in memory whole (as moto holds them anyway); no TLS.
    """

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        self._connections: set[Any] = set()
        self._lock = threading.Lock()
        self._server = make_server(host, port, DomainDispatcherApplication(create_backend_app), threaded=True,
                                   request_handler=_keepalive_handler_class())
        self._server.featureshare_connections = self  # how handlers find the connection registry
        self._thread = threading.Thread(target=self._server.serve_forever, name="featureshare-aws-server",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def track(self, connection: Any, is_open: bool) -> None:
        with self._lock:
            (self._connections.add if is_open else self._connections.discard)(connection)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, shut every open connection down, and wait for the accept loop to end."""
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout)


def _keepalive_handler_class() -> type:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveRequestHandler(MotoRequestHandler):  # type: ignore[misc,valid-type]
        protocol_version = "HTTP/1.1"
        timeout = KEEPALIVE_IDLE_TIMEOUT_S  # socket timeout: ends an idle keep-alive connection
        # TCP_NODELAY: the body is written after the headers; with Nagle's algorithm it waits for the client to
        # ACK the headers, which a delayed ACK holds back ~40 ms -- every response would take 40 ms more.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            self.server.featureshare_connections.track(self.connection, True)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                self.server.featureshare_connections.track(self.connection, False)

        def run_wsgi(self) -> None:
            _run_wsgi_keepalive(self)

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            # werkzeug formats a line (with a timestamp) per request before its logger drops it
            if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
                super().log_request(code, size)

    return KeepAliveRequestHandler


def _read_request_body(handler: Any, environ: dict[str, Any]) -> bytes:
    # The whole body is read before the app runs, so the next request on the connection starts exactly
    # where this one ends, whatever the app leaves unread.
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's DechunkedInput
        return bytes(environ["wsgi.input"].read())
    length = environ.get("CONTENT_LENGTH") or ""
    return bytes(handler.rfile.read(int(length))) if length.isdigit() and int(length) else b""


def _run_wsgi_keepalive(handler: Any) -> None:
    """One request/response on a keep-alive connection; the response always carries its length."""
    from werkzeug.serving import connection_dropped_errors  # type: ignore[attr-defined]

    if handler.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
        handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    environ = handler.make_environ()
    try:
        body = _read_request_body(handler, environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status, headers, payload = _call_wsgi(handler.server.app, environ)
    except connection_dropped_errors:
        handler.close_connection = True
        return
    except Exception:  # the app failed: answer 500 and drop the connection, as werkzeug does
        logger.exception("embedded AWS: error on %s %s", handler.command, handler.path)
        status, headers, payload = "500 Internal Server Error", [], b"Internal Server Error"
        handler.close_connection = True
    _write_response(handler, environ, status, headers, payload)


def _write_response(handler: Any, environ: dict[str, Any], status: str, headers: list[tuple[str, str]],
                    payload: bytes) -> None:
    code_text, _, reason = status.partition(" ")
    code = int(code_text)
    handler.send_response(code, reason)
    names = set()
    for key, value in headers:
        handler.send_header(key, value)
        names.add(key.lower())
    bodyless = environ["REQUEST_METHOD"] == "HEAD" or 100 <= code < 200 or code in (204, 304)
    if "content-length" not in names and not bodyless:
        handler.send_header("Content-Length", str(len(payload)))
    if handler.close_connection:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if payload and not bodyless:
        handler.wfile.write(payload)
    handler.wfile.flush()


def start_server(host: str = "127.0.0.1", port: int = 0) -> tuple[EmbeddedServer, int]:
    """Serve moto (with the installed routes) on ``host`` (port 0 = a free port); returns (server, bound port)."""
    # werkzeug logs every request at INFO through its own stderr handler; library code must stay quiet.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = EmbeddedServer(host, port)
    server.start()
    return server, server.port


def stop_server(server: EmbeddedServer) -> None:
    server.stop()
    logging.getLogger("werkzeug").setLevel(logging.NOTSET)
