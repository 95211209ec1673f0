"""A local stand-in for the Hugging Face Hub's file endpoint, so download tests never leave 127.0.0.1.

It answers what huggingface_hub 2.x reads in file_download.py (get_hf_file_metadata, http_get):
HEAD and GET on /<repo>/resolve/<revision>/<file> with X-Repo-Commit, ETag (the file's sha256, as the
Hub gives for LFS files), Content-Length and Accept-Ranges; a GET with `Range: bytes=N-` gets 206 and
Content-Range, as a resumed download asks. A missing file is 404 with X-Error-Code EntryNotFound (which
makes hf_hub_download try the next file name), an unknown repo 404 with RepoNotFound, a revision other
than "main", the repo's commit or one of its `tags` 404 with RevisionNotFound.

`mode` switches between a healthy Hub and the failures under test:
- "ok": every file is served;
- "cut": the body of every file over CUT_MIN_BYTES stops halfway and the connection closes, resumed or not;
- "silent": requests are read and never answered;
- "error": every request gets 503 Service Unavailable;
- "held": bodies over CUT_MIN_BYTES stop halfway until `release()`, then complete (a download in progress).
Point a process at it with HF_ENDPOINT=<url>. `requests` records every (method, path) it received.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from pathlib import Path

CUT_MIN_BYTES = 1_000_000  # weights are cut or held; configs always arrive whole
SILENT_FOR_AT_MOST_S = 120
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<name>.+)$")


class StandInHub:
    """Serves repos given as {repo: {file name: local path}} on a free port; use as a context manager."""

    def __init__(self, repos: dict[str, dict[str, Path]], tags: dict[str, set[str]] | None = None) -> None:
        self.repos = {repo: {name: Path(path) for name, path in files.items()} for repo, files in repos.items()}
        self.tags = tags or {}
        self.mode = "ok"
        self.requests: list[tuple[str, str]] = []
        self._released = threading.Event()  # ends "held" and "silent" waits
        self._etags: dict[Path, str] = {}
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub._answer(self, with_body=False)

            def do_GET(self) -> None:
                hub._answer(self, with_body=True)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> StandInHub:
        threading.Thread(target=self._server.serve_forever, name="stand-in-hub", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def set_mode(self, mode: str) -> None:
        assert mode in ("ok", "cut", "silent", "error", "held")
        self._released.clear()
        self.mode = mode

    def heal(self) -> None:
        """Back to healthy; anything waiting silently is let go (without an answer)."""
        self.mode = "ok"
        self._released.set()

    def release(self) -> None:
        """Let held downloads finish."""
        self._released.set()

    def gets(self, name: str, repo: str = "") -> int:
        """How many GET requests asked for a file of this name (in this repo, if given)."""
        return sum(
            1
            for method, path in self.requests
            if method == "GET" and path.endswith("/" + name) and (not repo or path.startswith(f"/{repo}/"))
        )

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def etag(self, path: Path) -> str:
        if path not in self._etags:
            self._etags[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._etags[path]

    # --- answering ---------------------------------------------------------------------------------

    def _answer(self, request: http.server.BaseHTTPRequestHandler, with_body: bool) -> None:
        self.requests.append((request.command, request.path))
        mode = self.mode
        if mode == "silent":
            self._released.wait(SILENT_FOR_AT_MOST_S)
            request.close_connection = True
            return
        if mode == "error":
            self._send_error(request, 503, "Service Unavailable")
            return
        match = RESOLVE.match(request.path.split("?")[0])
        if match is None or match["repo"] not in self.repos:
            self._send_error(request, 404, "RepoNotFound")
            return
        repo = match["repo"]
        if match["revision"] not in {"main", self.commit(repo), *self.tags.get(repo, ())}:
            self._send_error(request, 404, "RevisionNotFound")
            return
        path = self.repos[repo].get(match["name"])
        if path is None:
            self._send_error(request, 404, "EntryNotFound", commit=self.commit(repo))
            return
        data = path.read_bytes()
        start = self._range_start(request.headers.get("Range"))
        request.send_response(206 if start else 200)
        request.send_header("X-Repo-Commit", self.commit(repo))
        request.send_header("ETag", f'"{self.etag(path)}"')
        request.send_header("Accept-Ranges", "bytes")
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(data) - start))
        if start:
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        request.end_headers()
        if not with_body:
            return
        halfway = len(data) // 2 if len(data) > CUT_MIN_BYTES else len(data)
        try:
            if mode in ("cut", "held") and start < halfway:
                request.wfile.write(data[start:halfway])
                request.wfile.flush()
                if mode == "held" and self._released.wait(SILENT_FOR_AT_MOST_S):
                    request.wfile.write(data[halfway:])
            elif mode != "cut" or halfway == len(data):
                request.wfile.write(data[start:])
            # else: resumed past the cut, so headers only, then the connection closes
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its read timeout), as it may
        request.close_connection = True

    @staticmethod
    def _range_start(header: str | None) -> int:
        match = re.fullmatch(r"bytes=(\d+)-\d*", header or "")
        return int(match[1]) if match else 0

    @staticmethod
    def _send_error(
        request: http.server.BaseHTTPRequestHandler, status: int, code: str, commit: str | None = None
    ) -> None:
        request.send_response(status)
        if status == 404:
            request.send_header("X-Error-Code", code)
        if commit:
            request.send_header("X-Repo-Commit", commit)
        request.send_header("Content-Length", "0")
        request.end_headers()
        request.close_connection = True
