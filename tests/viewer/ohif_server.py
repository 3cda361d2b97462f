"""OHIF's prebuilt ``dist/`` served on loopback, with ``/dicom-web`` proxied to Orthanc.

One origin for the app and its data, so the browser needs no CORS; the proxy adds Orthanc's
HTTP Basic credentials, so the page needs none, and, as a reverse proxy does, tells Orthanc
the origin it serves (``Forwarded: host=...``), so the URLs Orthanc writes into its answers
(the BulkDataURIs of a PALETTE COLOR image's lookup tables, which the viewer fetches as they
are) point at the proxy, not at Orthanc's own port.  ``/app-config.js`` is generated: one DICOMweb
data source at ``http://127.0.0.1:<port>/dicom-web``.
"""

from __future__ import annotations

import base64
import mimetypes
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

DIST = Path(__file__).resolve().parent / "ohif" / "dist"
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
#: Request headers passed to Orthanc (the rest, e.g. Accept-Encoding, are dropped).
_FORWARD = ("Accept", "Content-Type", "Range")


def app_config(base_url: str, cpu_rendering: bool = False) -> str:
    """OHIF's ``window.config`` with one DICOMweb source at ``<base_url>/dicom-web``.

    Parameters
    ----------
    base_url
        Origin of the page, e.g. ``http://127.0.0.1:8042``.
    cpu_rendering
        Render the images with Cornerstone's CPU path instead of WebGL.

    Returns
    -------
    str
        JavaScript source of ``app-config.js``.
    """
    root = f"{base_url}/dicom-web"
    return f"""window.config = {{
  routerBasename: '/',
  useCPURendering: {"true" if cpu_rendering else "false"},
  extensions: [],
  modes: [],
  showStudyList: true,
  maxNumberOfWebWorkers: 1,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  investigationalUseDialog: {{ option: 'never' }},
  maxNumRequests: {{ interaction: 20, thumbnail: 2, prefetch: 5 }},
  showErrorDetails: 'always',
  // OHIF passes failed image loads here (its default config has one; without it, it throws)
  httpErrorHandler: (error) => {{
    const what = error && (error.stack || error.message || error.status || JSON.stringify(error));
    console.error(`IMAGE_LOAD_ERROR detail: ${{what}}`);
  }},
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {{
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {{
        friendlyName: 'knee-node test Orthanc',
        name: 'orthanc',
        wadoUriRoot: '{root}',
        qidoRoot: '{root}',
        wadoRoot: '{root}',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: false,
        singlepart: 'bulkdata,video',
        bulkDataURI: {{ enabled: true, relativeResolution: 'studies' }},
        omitQuotationForMultipartRequest: true,
      }},
    }},
  ],
}};
"""


class OhifServer:
    """Serve ``dist`` and proxy ``/dicom-web/...`` to ``orthanc_url`` (a thread; a context
    manager).

    Parameters
    ----------
    orthanc_url
        Orthanc's HTTP root, e.g. ``http://127.0.0.1:8042``.
    user, password
        Orthanc's HTTP Basic credentials (``None``: none sent).
    dist
        OHIF's ``dist/`` folder.
    cpu_rendering
        See :func:`app_config`.
    """

    def __init__(self, orthanc_url: str, user: str | None = None, password: str | None = None,
                 dist: Path = DIST, cpu_rendering: bool = False) -> None:
        self.cpu_rendering = cpu_rendering
        self.orthanc_url = orthanc_url.rstrip("/")
        self.dist = dist
        self.auth = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
        )
        self.errors: list[str] = []  # proxied requests Orthanc answered with >= 400
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The page's origin, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> OhifServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet; proxied errors are collected in server.errors

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                req = urllib.request.Request(server.orthanc_url + self.path, data=body,
                                             method=self.command)
                for name in _FORWARD:
                    if name in self.headers:
                        req.add_header(name, self.headers[name])
                if server.auth:
                    req.add_header("Authorization", server.auth)
                if "Host" in self.headers:  # RFC 7239, read by Orthanc's DICOMweb plugin
                    req.add_header("Forwarded", f"host={self.headers['Host']};proto=http")
                try:
                    with urllib.request.urlopen(req, timeout=60) as rsp:
                        status, data, ctype = rsp.status, rsp.read(), rsp.headers.get(
                            "Content-Type", "application/octet-stream")
                except urllib.error.HTTPError as err:
                    status, data = err.code, err.read()
                    ctype = err.headers.get("Content-Type", "text/plain")
                    server.errors.append(f"{self.command} {self.path} -> {status}")
                self._send(status, data, ctype)

            def _static(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/app-config.js":
                    config = app_config(server.url, server.cpu_rendering)
                    self._send(200, config.encode(), "text/javascript")
                    return
                file = (server.dist / path.lstrip("/")).resolve()
                if not file.is_relative_to(server.dist.resolve()) or not file.is_file():
                    file = server.dist / "index.html"  # the app's own routes (/viewer?...)
                ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                self._send(200, file.read_bytes(), ctype)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/dicom-web/"):
                    self._proxy()
                else:
                    self._static()

            do_HEAD = do_GET  # noqa: N815

            def do_POST(self) -> None:  # noqa: N802
                self._proxy()

        return Handler
