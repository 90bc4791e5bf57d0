"""A local HTTP server on 127.0.0.1 that mimics Zenodo's records API, and a zip writer, for the download tests.

`test_download` (MIMII) and `test_download_dcase` (DCASE Task 2) both download from :class:`FakeZenodo`,
so neither needs the internet.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeZenodo:
    """Serves ``/api/records/<id>`` and its files for several records, with Range, cut transfers and bad bytes.

    Use it as a context manager (``with FakeZenodo() as server``) so the server is shut down afterwards.
    """

    def __init__(self) -> None:
        self.records: dict[int, dict[str, tuple[bytes, bytes]]] = {}  # record -> key -> (listed, served)
        self.entries: dict[int, list[dict]] = {}  # record -> metadata entries listed as they are, never served
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header) of every GET
        self.cut_after: int | None = None  # close the connection after this many body bytes (once)
        self.ignore_range = False  # answer a Range request with the whole file (200)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self) -> FakeZenodo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, record: int, key: str, data: bytes, *, served: bytes | None = None) -> None:
        """List `key` in `record` with the size and MD5 of `data`; serve `served` (e.g. corrupted bytes) or `data`."""
        self.records.setdefault(record, {})[key] = (data, data if served is None else served)

    def add_entry(self, record: int, entry: dict) -> None:
        """List `entry` in `record`'s metadata as it is (e.g. one without checksum or link); it is never served."""
        self.records.setdefault(record, {})
        self.entries.setdefault(record, []).append(entry)

    def url(self, record: int, key: str) -> str:
        """Where `key` of `record` is served, spelt as Zenodo's ``links.self``."""
        return f"{self.base_url}/api/records/{record}/files/{key}/content"

    def listed_md5(self, record: int, key: str) -> str:
        return hashlib.md5(self.records[record][key][0]).hexdigest()

    def metadata(self, record: int) -> dict:
        files = [{"key": key, "size": len(listed), "checksum": f"md5:{self.listed_md5(record, key)}",
                  "links": {"self": self.url(record, key)}}
                 for key, (listed, _) in self.records[record].items()]
        return {"id": record, "files": files + self.entries.get(record, [])}

    def file_requests(self) -> list[tuple[str, str | None]]:
        return [r for r in self.requests if "/files/" in r[0]]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: FakeZenodo) -> type[BaseHTTPRequestHandler]:
    """The request handler class of `server`: metadata as JSON, files with Range (206) unless told to ignore it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            server.requests.append((self.path, self.headers.get("Range")))
            m = re.fullmatch(r"/api/records/(\d+)", self.path)
            if m and int(m[1]) in server.records:
                return self._send(200, json.dumps(server.metadata(int(m[1]))).encode(), "application/json")
            m = re.fullmatch(r"/api/records/(\d+)/files/(.+)/content", self.path)
            if not m or m[2] not in server.records.get(int(m[1]), {}):
                return self._send(404, b"not found", "text/plain")
            data = server.records[int(m[1])][m[2]][1]
            rng = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            ranged = rng is not None and not server.ignore_range
            start = int(rng[1]) if ranged else 0
            self.send_response(206 if ranged else 200)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.cut_after is not None:
                body, server.cut_after = body[: server.cut_after], None
                self.close_connection = True
            self.wfile.write(body)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def make_zip(tmp_path: Path, entries: dict[str, bytes]) -> bytes:
    """The bytes of a deflated zip holding `entries` (name -> bytes), written via ``tmp_path/made.zip``."""
    path = tmp_path / "made.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path.read_bytes()
