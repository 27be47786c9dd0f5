"""The console's HTTP client of the ManyAngles API. Every mutation goes through here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx


class ApiError(Exception):
    """An API answer that is not a success, or no answer at all, as a message for a person."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: str | None = None,
        match: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after
        self.match = match  # a refusal's person: who the face is identified as, or is not

    def friendly(self) -> str:
        if self.code == "api_down":
            return f"The ManyAngles API is not reachable: {self.message}"
        if self.status == 401:
            return "The API key was refused (revoked, or not this service's): sign out and sign in with a valid key."
        if self.code == "busy":
            return f"The service is busy; try again in {self.retry_after or 'a few'} seconds."
        return f"{self.message} ({self.code})"


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    mime: str = "image/jpeg"


@dataclass(frozen=True)
class Changed:
    """GET /v1/export/changes: the persons changed after a change token, and the next token."""

    token: str
    etag: str
    person_ids: tuple[int, ...]  # added or changed
    deleted: bool  # persons were deleted: drop those no longer in the persons table
    complete: bool  # False: too many changed to list; read the tables again


class ApiClient:
    def __init__(self, base_url: str, api_key: str, timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers={"X-API-Key": api_key})

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "api_down", f"{self.base_url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def health(self) -> dict[str, Any]:
        """The service's parts; ``key``: this client's key (name, scope, grants) when valid, else None."""
        return self._call("GET", "/v1/health").json()

    def persons(self, limit: int = 100, offset: int = 0, prefix: str | None = None) -> dict[str, Any]:
        """A page of persons (GET /v1/persons): ``persons``, ``total``, ``next_offset``."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if prefix:
            params["prefix"] = prefix
        return self._call("GET", "/v1/persons", params=params).json()

    def person(self, person_id: int) -> dict[str, Any]:
        return self._call("GET", f"/v1/persons/{person_id}").json()

    def image(self, url: str) -> bytes:
        """A stored image at full size (the access log names its person as viewed)."""
        return self._call("GET", url).content

    def thumbnail(self, person_id: int, image_id: int, side: int = 192) -> bytes:
        """A cover for a grid of persons: a small JPEG, logged as browsing (no person named)."""
        return self._call("GET", f"/v1/persons/{person_id}/images/{image_id}", params={"thumbnail": side}).content

    def merge(self, keep: int, other: int, force: bool = False) -> dict[str, Any]:
        """Merge person ``other`` into ``keep`` (an admin key); ``force``: even if their photos
        do not verify as the same face."""
        return self._call("POST", f"/v1/persons/{keep}/merge", json={"other": other, "force": force}).json()

    def rename(self, person_id: int, name: str) -> dict[str, Any]:
        return self._call("PATCH", f"/v1/persons/{person_id}", data={"name": name}).json()

    def export(
        self, table: str, vectors: bool = False, person_ids: list[int] | None = None, columns: list[str] | None = None
    ) -> bytes:
        """One gallery table as Parquet bytes (GET /v1/export), or only some persons' rows, or
        only some columns."""
        params: dict[str, Any] = {"table": table, "vectors": str(vectors).lower()}
        if person_ids is not None:
            params["person_id"] = [str(i) for i in person_ids]
        if columns:
            params["column"] = list(columns)
        return self._call("GET", "/v1/export", params=params).content

    def changes(self, since: str | None = None, limit: int = 10_000) -> Changed | None:
        """The persons changed after ``since`` (None: just the current token); None when the
        token is from another copy of the gallery (a restore): read the tables again."""
        params: dict[str, Any] = {"limit": limit} | ({"since": since} if since else {})
        try:
            body = self._call("GET", "/v1/export/changes", params=params).json()
        except ApiError as exc:
            if exc.code == "changes_unavailable":
                return None
            raise
        return Changed(
            body["token"], body["etag"], tuple(body["person_ids"]), bool(body["deleted"]), bool(body["complete"])
        )

    def delete(self, person_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/v1/persons/{person_id}").json()

    def delete_image(self, person_id: int, image_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/v1/persons/{person_id}/images/{image_id}").json()

    def add_photo(self, person_id: int, photo: Upload, augment: bool = False, force: bool = False) -> dict[str, Any]:
        """Another photo of an enrolled person (POST /v1/persons/{id}/photos); ``augment``: with
        the generator's default views of it."""
        data = {"use_augmentation": str(augment).lower(), "force": str(force).lower()}
        files = {"photo": (photo.name, photo.data, photo.mime)}
        return self._call("POST", f"/v1/persons/{person_id}/photos", data=data, files=files).json()

    def identify(self, photo: Upload, top_k: int = 5) -> dict[str, Any]:
        files = {"photo": (photo.name, photo.data, photo.mime)}
        return self._call("POST", "/v1/identify", files=files, data={"top_k": str(top_k)}).json()

    def verify(self, a: Upload, b: Upload) -> dict[str, Any]:
        files = {"photo_a": (a.name, a.data, a.mime), "photo_b": (b.name, b.data, b.mime)}
        return self._call("POST", "/v1/verify", files=files).json()

    def verify_person(self, person_id: int, photo: Upload) -> dict[str, Any]:
        """Is the face in ``photo`` this enrolled person (POST /v1/persons/{id}/verify)?"""
        files = {"photo": (photo.name, photo.data, photo.mime)}
        return self._call("POST", f"/v1/persons/{person_id}/verify", files=files).json()

    def generation_runs(self, limit: int = 2000) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/stats/generation", params={"limit": limit}).json()["runs"]

    def enrollment_runs(self, limit: int = 2000) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/stats/enrollments", params={"limit": limit}).json()["runs"]

    def searches(self, limit: int = 2000) -> list[dict[str, Any]]:
        """The latest identify and verify calls' timings, newest first (GET /v1/stats/searches)."""
        return self._call("GET", "/v1/stats/searches", params={"limit": limit}).json()["runs"]

    def batching(self, recent: int = 2000) -> dict[str, Any]:
        return self._call("GET", "/v1/stats/batching", params={"recent": recent}).json()

    def thresholds(self) -> dict[str, Any]:
        return self._call("GET", "/v1/thresholds").json()

    def duplicates(self) -> dict[str, Any]:
        """Pairs of persons whose photos identify each other (an admin key)."""
        return self._call("GET", "/v1/duplicates").json()

    def jobs(self) -> list[dict[str, Any]]:
        """The newest batch jobs (re-embeddings, background searches for duplicates), newest first."""
        return self._call("GET", "/v1/jobs").json()

    def start_duplicates_job(self) -> dict[str, Any]:
        """The same search as a background job, for any gallery size (an admin key)."""
        return self._call("POST", "/v1/duplicates/jobs").json()

    def duplicates_audit(self, limit: int = 500) -> dict[str, Any]:
        """The newest background search (``job``) and the newest finished one's ``limit`` best pairs (``result``)."""
        return self._call("GET", "/v1/duplicates/audit", params={"limit": limit}).json()

    def models(self) -> dict[str, Any]:
        """Every model version of the gallery (``active``, ``models``: status, vectors, thresholds)."""
        return self._call("GET", "/v1/models").json()

    def start_reembed(self, embedder: str, switch: bool = True, allow_missing: bool = False) -> dict[str, Any]:
        """Re-embed every stored image with ``embedder`` as a batch job (an admin key)."""
        body = {"model": embedder, "switch": switch, "allow_missing": allow_missing}
        return self._call("POST", "/v1/models/reembed", json=body).json()

    def activate_model(self, name: str, allow_missing: bool = False) -> dict[str, Any]:
        """Switch to a recorded model every image has a vector of (an admin key)."""
        params = {"allow_missing": str(allow_missing).lower()}
        return self._call("POST", f"/v1/models/{quote(name, safe='')}/activate", params=params).json()

    def prune_model(self, name: str) -> dict[str, Any]:
        """Remove every vector of a model that is not the active one (an admin key)."""
        return self._call("DELETE", f"/v1/models/{quote(name, safe='')}/embeddings").json()

    def keys(self) -> list[dict[str, Any]]:
        """Every API key made (an admin key): id, name, scope, prefix, created_at, revoked_at."""
        return self._call("GET", "/v1/keys").json()["keys"]

    def create_key(self, name: str, scope: str) -> dict[str, Any]:
        """A new key (an admin key): ``key`` (its record) and ``secret`` (shown this once)."""
        return self._call("POST", "/v1/keys", data={"name": name, "scope": scope}).json()

    def revoke_key(self, key_id: int) -> dict[str, Any]:
        """Stop a key from working, for good (an admin key)."""
        return self._call("DELETE", f"/v1/keys/{key_id}").json()

    def access_log(
        self,
        limit: int = 100,
        action: str | None = None,
        since: date | None = None,
        until: date | None = None,
        person_id: int | None = None,
    ) -> dict[str, Any]:
        """Who did what (over HTTP and on the command line), newest first (an admin key): ``entries``,
        ``total``; ``since`` / ``until``: from the start of that day / before the start of that day (UTC);
        ``person_id``: only the entries that name that person."""
        params: dict[str, Any] = {"limit": limit} | ({"action": action} if action else {})
        params |= {} if person_id is None else {"person_id": person_id}
        params |= {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
        return self._call("GET", "/v1/access-log", params=params).json()

    def faces(self, photo: Upload) -> list[dict[str, Any]]:
        """Every face in a photo (boxes, largest first: the order enrollment's face index uses)."""
        files = {"photos": (photo.name, photo.data, photo.mime)}
        return self._call("POST", "/v1/embed", files=files).json()["results"][0]["faces"]

    def enroll_stream(
        self,
        name: str,
        photo: Upload,
        augment: bool,
        views: list[str] | None,
        seed: int,
        face: str = "single",
        into: int | None = None,
        force: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The NDJSON lines of a streamed enrollment (``into``: the photo added to that person,
        ``force``: even if it is identified as someone else, or a new person's face as someone
        already enrolled); the last is a result or an error line."""
        data = {"use_augmentation": str(augment).lower(), "seed": str(seed), "face": face, "force": str(force).lower()}
        if into is None:
            data["name"] = name
        if augment and views:
            data["views"] = ",".join(views)
        files = {"photo": (photo.name, photo.data, photo.mime)}
        headers = {"Accept": "application/x-ndjson"}
        path = "/v1/persons" if into is None else f"/v1/persons/{into}/photos"
        try:
            with self._http.stream("POST", path, data=data, files=files, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise ApiError(0, "api_down", f"{self.base_url}: {type(exc).__name__}") from None


def _error(response: httpx.Response) -> ApiError:
    match = None
    try:
        body = response.json()["error"]
        code, message = body["code"], body["message"]
        match = body.get("match")
    except (ValueError, KeyError, TypeError):  # not the API's answer: Serve's proxy, or a replica that died
        code, message = "http_error", f"HTTP {response.status_code}"
        text = " ".join(response.text.split())[:200]
        if text:
            message += f": {text}"
        if response.status_code >= 500:
            message += (
                " (the service did not finish this request: a replica may have restarted; a change may or may "
                "not have been stored, so look before repeating it)"
            )
    return ApiError(response.status_code, code, message, response.headers.get("retry-after"), match)
