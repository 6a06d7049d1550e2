"""A small in-memory Hugging Face Hub for tests: the HTTP subset the real huggingface_hub client uses.

Loopback only (127.0.0.1), files held in memory, every upload inline ("regular" mode, no LFS or Xet),
request bodies capped, and the server stops by itself after ``lifetime_s`` (or on ``stop()``).
Supported: create_repo, create_branch, preupload, commit (header / file / deletedFile), validate-yaml,
resolve (HEAD / GET with Range), revision info, model info and tree listings.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 256 * 2**20
_REPO = r"(?P<repo>[\w.\-]+/[\w.\-]+)"


class _Repo:
    def __init__(self) -> None:
        self.commits: dict[str, dict[str, bytes]] = {}
        self.refs: dict[str, str] = {}

    def commit(self, parent: str | None, files: dict[str, bytes]) -> str:
        digest = hashlib.sha1((parent or "").encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        sha = digest.hexdigest()
        self.commits[sha] = files
        return sha

    def resolve(self, rev: str) -> str | None:
        if rev in self.commits:
            return rev
        return self.refs.get(rev)


class HubServer:
    """``HubServer(port).start()``; ``endpoint`` is the value for ``HF_ENDPOINT``."""

    def __init__(self, port: int = 0, *, lifetime_s: float = 600.0) -> None:
        self.repos: dict[str, _Repo] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="test-hub", daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    def start(self) -> HubServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- storage ---------------------------------------------------------------------------------
    def create(self, repo_id: str) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            repo = self.repos[repo_id] = _Repo()
            repo.refs["main"] = repo.commit(None, {".gitattributes": b""})
            return True

    def files(self, repo_id: str, rev: str) -> tuple[str, dict[str, bytes]] | tuple[None, str]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, "RepoNotFound"
        sha = repo.resolve(rev)
        if sha is None:
            return None, "RevisionNotFound"
        return sha, repo.commits[sha]


def _handler(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        # --- helpers ---------------------------------------------------------------------------
        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                raise ValueError("request body too large for the test hub")
            return self.rfile.read(n)

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, obj, headers: dict | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, code: str, status: int = 404, head: bool = False) -> None:
            body = json.dumps({"error": code}).encode()
            self._send(status, body, {"X-Error-Code": code, "X-Error-Message": code,
                                      "Content-Type": "application/json"}, head=head)

        def _path(self) -> tuple[str, dict]:
            parsed = urllib.parse.urlparse(self.path)
            return urllib.parse.unquote(parsed.path), urllib.parse.parse_qs(parsed.query)

        # --- routes ----------------------------------------------------------------------------
        def do_HEAD(self) -> None:
            hub.requests.append(("HEAD", self._path()[0]))
            self._resolve(head=True)

        def do_GET(self) -> None:
            path, _ = self._path()
            hub.requests.append(("GET", path))
            if m := re.fullmatch(rf"/api/models/{_REPO}/revision/(?P<rev>.+)", path):
                return self._info(m["repo"], m["rev"])
            if m := re.fullmatch(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(/(?P<sub>.*))?", path):
                return self._tree(m["repo"], m["rev"], m["sub"] or "")
            if m := re.fullmatch(rf"/api/models/{_REPO}", path):
                return self._info(m["repo"], "main")
            return self._resolve(head=False)

        def do_POST(self) -> None:
            path, _ = self._path()
            hub.requests.append(("POST", path))
            body = self._body()
            if path == "/api/repos/create":
                data = json.loads(body)
                repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
                created = hub.create(repo_id)
                return self._json(200 if created else 409, {"url": f"{hub.endpoint}/{repo_id}"})
            if path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            if m := re.fullmatch(rf"/api/models/{_REPO}/preupload/(?P<rev>.+)", path):
                files = json.loads(body)["files"]
                return self._json(200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                ]})
            if m := re.fullmatch(rf"/api/models/{_REPO}/commit/(?P<rev>.+)", path):
                return self._commit(m["repo"], m["rev"], body)
            if m := re.fullmatch(rf"/api/models/{_REPO}/branch/(?P<rev>.+)", path):
                sha, files = hub.files(m["repo"], "main")
                if sha is None:
                    return self._error(files)
                with hub.lock:
                    hub.repos[m["repo"]].refs.setdefault(m["rev"], sha)
                return self._json(200, {})
            return self._error("NotFound")

        def _commit(self, repo_id: str, rev: str, body: bytes) -> None:
            sha, files = hub.files(repo_id, rev)
            if sha is None:
                return self._error(files)
            new = dict(files)
            summary = ""
            for line in body.decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    new[value["path"]] = base64.b64decode(value["content"])
                elif key in ("deletedFile", "deletedFolder"):
                    prefix = value["path"].rstrip("/")
                    for p in [p for p in new if p == prefix or p.startswith(prefix + "/")]:
                        del new[p]
                else:  # lfsFile: never announced, every file is "regular"
                    return self._error("UnsupportedOperation", status=400)
            with hub.lock:
                repo = hub.repos[repo_id]
                commit = repo.commit(sha, new)
                repo.refs[rev] = commit  # rev is a branch: files() resolved it
            return self._json(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{commit}",
                                    "commitOid": commit, "commitMessage": summary, "pullRequestUrl": None})

        def _info(self, repo_id: str, rev: str) -> None:
            sha, files = hub.files(repo_id, rev)
            if sha is None:
                return self._error(files)
            self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                             "siblings": [{"rfilename": p} for p in sorted(files)]})

        def _tree(self, repo_id: str, rev: str, sub: str) -> None:
            sha, files = hub.files(repo_id, rev)
            if sha is None:
                return self._error(files)
            prefix = sub.rstrip("/") + "/" if sub else ""
            entries = [{"type": "file", "path": p, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                       for p, data in sorted(files.items()) if p.startswith(prefix)]
            self._json(200, entries)

        def _resolve(self, head: bool) -> None:
            path, _ = self._path()
            m = re.fullmatch(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)
            if not m:
                return self._error("NotFound", head=head)
            sha, files = hub.files(m["repo"], m["rev"])
            if sha is None:
                return self._error(files, head=head)
            if m["file"] not in files:
                return self._error("EntryNotFound", head=head)
            data = files[m["file"]]
            headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            status = 200
            if (rng := self.headers.get("Range")) and (r := re.fullmatch(r"bytes=(\d+)-(\d*)", rng)):
                start = int(r[1])
                end = int(r[2]) if r[2] else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start : end + 1], 206
            self._send(status, data, headers, head=head)

    return Handler
