"""POST a JSON request to an OpenAI-compatible endpoint over aiohttp, outside the SDK.

Why a second HTTP path: at high concurrency the client's CPU time per call sets the
throughput, because replies come back in bursts and wait for the one event loop. The SDK's
path (request building, its httpx pool, its auth layer) costs about twice what aiohttp's
C-accelerated client does; measured with bench/engine.py's setting (2 cores, our scripted
server at 1 s latency, concurrency 256, `skilltrain.evaluate`): 0.74-0.80 of the latency-bound
limit through the SDK, 0.89 through this path, interleaved on the same busy machine. The SDK
stays the other transport (`transport: sdk`) and its vocabulary is kept here: the same
`Error code: N - message` text, the same ModelError kinds and wording, Refused carrying the
reply's headers for the limiter.

What the SDK did that this path must do too: the bearer key, the organisation / project
headers from the environment (OPENAI_ORG_ID, OPENAI_PROJECT_ID), proxies from the
environment (proxy_for), CA certificates (SSL_CERT_FILE, else certifi's bundle when
installed), a connect timeout, and a deadline on the whole call.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
import ssl
from typing import Any

from skilltrain.models.base import ModelError
from skilltrain.models.limits import Refused


def aiohttp_installed() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def _tls_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            cafile = None
    return ssl.create_default_context(cafile=cafile)


def proxy_for(url: Any) -> str | None:
    """The proxy the environment names for this URL (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY,
    NO_PROXY), read once: aiohttp's own `trust_env` would also look up ~/.netrc on every
    request, in a thread."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    host = url.host or ""
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    return proxies.get(url.scheme) or proxies.get("all")


def status_message(status: int, text: str) -> str:
    """The SDK's wording for an error status: `Error code: N - <error.message>` when the body
    is JSON with a message, else `Error code: N`."""
    message = f"Error code: {status}"
    try:
        body = json.loads(text)
    except ValueError:
        return message
    error = body.get("error", body) if isinstance(body, dict) else None
    inner = error.get("message") if isinstance(error, dict) else None
    return f"{message} - {inner}" if isinstance(inner, str) and inner else message


class AiohttpPoster:
    """One endpoint's POSTs over one aiohttp session (made on first use, in the running loop:
    a session belongs to the loop it was made in, so a new loop gets a new session)."""

    def __init__(self, base_url: str, api_key: str, *, deadline_s: float, connect_s: float,
                 concurrency: int, user_agent: str = "skilltrain"):
        from yarl import URL  # aiohttp's URL type

        base = URL(base_url).with_user(None)  # credentials in a URL are not sent (as the SDK)
        self._base, self._query = base.path.rstrip("/"), base.query
        self._origin = base
        self._proxy = proxy_for(base)
        self.deadline_s, self.connect_s = deadline_s, connect_s
        self.concurrency = concurrency
        self.headers = {"Authorization": f"Bearer {api_key}",
                        "Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": user_agent}
        for header, env in (("OpenAI-Organization", "OPENAI_ORG_ID"),
                            ("OpenAI-Project", "OPENAI_PROJECT_ID")):
            if os.environ.get(env):
                self.headers[header] = os.environ[env]
        self._session: Any = None
        self._loop: Any = None

    def _open(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._discard()  # one made in an earlier asyncio.run: its loop is gone
            # Reading the CA bundle takes ~36 ms, so a plain-http endpoint gets aiohttp's own
            # verifying default (True), which still checks a redirect to https.
            tls = _tls_context() if self._origin.scheme == "https" else True
            connector = aiohttp.TCPConnector(limit=self.concurrency, ssl=tls)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_s))
            self._loop = loop
        return self._session

    async def post(self, path: str, body: dict[str, Any]) -> tuple[Any, Any]:
        """The reply's JSON and headers. Raises ModelError (timeout, connection) when no reply
        came, StatusError for an error status, Refused (with the headers) for a body that is
        not JSON."""
        import aiohttp

        session = self._open()
        url = self._origin.with_path(f"{self._base}/{path.lstrip('/')}").with_query(self._query)
        try:
            async with asyncio.timeout(self.deadline_s):
                async with session.post(url, data=json.dumps(body), proxy=self._proxy) as resp:
                    raw = await resp.read()
                    status, headers = resp.status, resp.headers
        except aiohttp.ConnectionTimeoutError:
            raise ModelError("timeout", f"could not connect within {self.connect_s:g}s") \
                from None
        except TimeoutError:  # the deadline (aiohttp's socket timeouts are TimeoutErrors too)
            raise ModelError("timeout", f"no reply within the {self.deadline_s:g}s deadline") \
                from None
        except aiohttp.ClientError as exc:
            raise ModelError("connection", connection_reason(exc)) from None
        except OSError as exc:
            raise ModelError("connection", connection_reason(exc)) from None
        if status >= 400:
            text = raw.decode("utf-8", errors="replace").strip()
            raise StatusError(status, status_message(status, text), headers)
        try:
            return json.loads(raw), headers
        except ValueError as exc:  # a garbled body, e.g. from a proxy
            raise Refused(ModelError("bad_response", f"unreadable response ({exc})"),
                          headers) from None

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            if self._loop is asyncio.get_running_loop():
                await self._session.close()
            else:
                self._discard()
        self._session = None

    def _discard(self) -> None:
        """Close a session without its loop (it ended, or we are being collected): its
        sockets are closed at once, so aiohttp has no unclosed session to warn about. A model
        the caller made and passed in is not closed by the run, and a Trainer runs each fit in
        its own asyncio.run, so this is the common end of such a session."""
        session, self._session = self._session, None
        connector = getattr(session, "connector", None)
        if connector is not None and not connector.closed:
            with contextlib.suppress(Exception):
                connector._close()  # the synchronous part of connector.close()

    def __del__(self) -> None:
        self._discard()


class StatusError(Exception):
    """An HTTP error status with the SDK's message and the reply's headers; the model maps it
    to a ModelError kind (openai_compat.status_error) the same way for both transports."""

    def __init__(self, status: int, message: str, headers: Any):
        super().__init__(message)
        self.status_code, self.message, self.headers = status, message, headers


def connection_reason(exc: BaseException) -> str:
    """Why a connection failed, in words a user can act on."""
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen and len(seen) < 12:
        seen.append(node)
        node = getattr(node, "os_error", None) or node.__cause__ or node.__context__
    for e in seen:
        if isinstance(e, socket.gaierror):
            return f"name not resolved ({e.strerror or e})"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == \
                errno.ECONNREFUSED:
            return "connection refused"
    detail = next((str(e) for e in reversed(seen) if str(e)), "")
    return f"connection failed ({' '.join(detail.split())[:160]})" if detail else \
        "connection failed"
