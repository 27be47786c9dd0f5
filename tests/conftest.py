"""Shared fixtures: real photos from ../shared/faces, real models, real SQLite stores."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from pg_server import PostgresServer
from PIL import Image

if TYPE_CHECKING:
    from core.store.gallery import GalleryStore

REPO = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("MANYANGLES_FACES_DIR", REPO.parent / "shared" / "faces"))


def pytest_configure(config: pytest.Config) -> None:
    # Tests choose their own settings: a developer's MANYANGLES_* variables must not leak in
    # (the environment overrides a Settings(...) keyword, by design).
    for name in [k for k in os.environ if k.startswith("MANYANGLES_") and k != "MANYANGLES_FACES_DIR"]:
        del os.environ[name]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not FACES.is_dir():
        raise pytest.UsageError(f"the face photos are missing: {FACES} (set MANYANGLES_FACES_DIR)")


TIERS = ("unit", "service", "e2e", "gpu")
SERVING_FIXTURES = {"api", "serve_port", "console_env"}  # the session's Ray Serve app


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker (``-m unit``), the tier being its folder."""
    for item in items:
        tier = item.path.parent.name
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}")
        item.add_marker(getattr(pytest.mark, tier))
        if tier == "unit" and SERVING_FIXTURES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid} uses the Serve app: it belongs in tests/service")


def _ray_is_up() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


@pytest.fixture(autouse=True)
def _unit_tests_start_no_ray(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test that brings Ray up belongs in another tier (the session's Serve app, started
    by a service test before, is not this test's doing)."""
    before = _ray_is_up()
    yield
    if request.node.path.parent.name == "unit" and not before and _ray_is_up():
        pytest.fail("this unit test started Ray: it belongs in tests/service or tests/e2e")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return FACES


def photo(identity: str, n: int = 1) -> Path:
    return FACES / identity / f"{n}.jpg"


def photo_bytes(identity: str, n: int = 1) -> bytes:
    return photo(identity, n).read_bytes()


def side_by_side(*paths: Path, height: int = 400) -> bytes:
    """A JPEG with the given photos next to each other (a photo of several people)."""
    images = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        images.append(img.resize((round(img.width * height / img.height), height)))
    canvas = Image.new("RGB", (sum(i.width for i in images), height), (255, 255, 255))
    x = 0
    for img in images:
        canvas.paste(img, (x, 0))
        x += img.width
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def no_face_jpeg() -> bytes:
    """A real photo-sized image with no face: a smooth gradient with noise."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([x / 640 * 255, y / 480 * 255, np.full_like(x, 128.0)], axis=2)
    img = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG")
    return buf.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A complete, valid 1-bit PNG of width x height that compresses to well under a megabyte."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def files(**photos: bytes) -> dict[str, tuple[str, bytes, str]]:
    """Photos as the multipart fields of a request (field name -> JPEG bytes)."""
    return {field: (f"{field}.jpg", data, "image/jpeg") for field, data in photos.items()}


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the store's byte-for-byte state), but SQLite's ``-shm``:
    the WAL's shared-memory index, which every read of a connection kept open rewrites. (Read
    from a process that holds no store of ``root``: core/store/sqlite_db.py says why.)"""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    } | {str(p.relative_to(root)) + "/": "dir" for p in root.rglob("*") if p.is_dir()}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session (initdb into a temporary folder)."""
    folder = Path(tempfile.mkdtemp(prefix="manyangles-pg-"))
    server = PostgresServer(folder).start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


STORE_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=STORE_BACKENDS)
def open_store(request: pytest.FixtureRequest) -> Iterator[Callable[..., GalleryStore]]:
    """``GalleryStore(data_dir)`` on each backend (the store's tests run on both): SQLite in the
    data dir, or a fresh PostgreSQL database per data dir; the same data dir opens the same gallery."""
    from core.store.gallery import GalleryStore

    urls: dict[Path, str] = {}
    opened: list[GalleryStore] = []

    def open_(data_dir: Path, **kwargs: Any) -> GalleryStore:
        if request.param == "postgresql" and Path(data_dir) not in urls:
            urls[Path(data_dir)] = request.getfixturevalue("postgres").new_database()
        store = GalleryStore(data_dir, url=urls.get(Path(data_dir), ""), **kwargs)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def default_models():
    """The default model: SCRFD-500M and ArcFace MobileFaceNet from the PyPI wheel."""
    from core.faces.loading import load_face_models
    from core.settings import Settings

    return load_face_models(Settings())


@pytest.fixture(scope="session")
def dlib_models():
    """The permissive models: dlib's HOG, 68 landmarks and ResNet."""
    from core.faces.loading import load_face_models
    from core.settings import Settings

    return load_face_models(Settings(detector="dlib", embedder="dlib"))


@pytest.fixture()
def service(tmp_path: Path, default_models):
    from core.settings import Settings

    return local_service(Settings(data_dir=tmp_path / "data"), default_models)


def local_service(settings, models, augmentor=None):
    """The CLI's in-process service over already loaded models."""
    from core.augment.viewmaker import LocalViews
    from core.faces.active import ActiveModelFaces
    from core.faces.recognition import FaceEngine
    from core.service import ManyAnglesService
    from core.store.gallery import GalleryStore

    store = GalleryStore.from_settings(settings)
    faces = ActiveModelFaces(settings, store, in_service=False, engine=FaceEngine(models))
    return ManyAnglesService(settings, faces, store, LocalViews(settings, faces, augmentor))


def off_process(script: str, **values: Any) -> Any:
    """Run ``script`` in a fresh interpreter (``values`` as JSON in ``sys.argv[1]``) and return
    the JSON it prints.

    For Python's sqlite3 on the shared Serve app's gallery.db: the console tests attach that file
    with DuckDB's own copy of SQLite in this process, and two SQLite libraries in one process drop
    each other's POSIX locks (../shared/PLATFORM.md); a reader here then saw "database disk image
    is malformed" while a replica wrote."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(values, default=str)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- one real Ray Serve application on loopback for every HTTP and console test ----------------
KEY = "test-key-123"
AUTH = {"X-API-Key": KEY}
# enrollment form fields for a face other tests of the session's Serve app may have enrolled too
# (the duplicate-face check is tested on its own: tests/service/test_person_photos_http.py)
FORCE = {"force": "true"}
MAX_UPLOAD = 3 * 1024 * 1024  # the session app's upload cap (max_upload_bytes)


# Ports for the services the tests start, outside Ray's worker ports (10002-19999) and the
# kernel's ephemeral range (32768-60999 here), from which Ray's own servers take theirs: a port the
# kernel handed out as free could be taken by a Ray process before our server binds it.
TEST_PORTS = range(20000, 32768)


def free_port() -> int:
    for port in random.sample(TEST_PORTS, 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {TEST_PORTS}")


@pytest.fixture(scope="session")
def serve_port():
    """One local Ray and Serve (HTTP on loopback) for the whole test session."""
    import ray
    from ray import serve

    from serve.proxy_errors import proxy_environment

    port = free_port()
    os.environ.update(proxy_environment())  # the local Ray's processes inherit it: the proxy loads it
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}},
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def api(serve_port: int, tmp_path_factory: pytest.TempPathFactory):
    from ray import serve

    from core.settings import Settings
    from serve.app import compose
    from serve.config import deployment_options

    data = tmp_path_factory.mktemp("serve") / "data"
    # a small upload cap so that the 413 path is cheap to test
    settings = Settings(data_dir=data, api_key=KEY, max_upload_bytes=MAX_UPLOAD)
    serve.run(compose(settings, deployment_options()), name="manyangles", route_prefix="/")
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=300) as client:
        client.data_dir = data  # type: ignore[attr-defined]
        yield client


@pytest.fixture()
def console_env(api: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> httpx.Client:
    monkeypatch.setenv("MANYANGLES_API_URL", str(api.base_url))
    monkeypatch.setenv("MANYANGLES_API_KEY", KEY)
    monkeypatch.setenv("MANYANGLES_DATA_DIR", str(api.data_dir))  # type: ignore[attr-defined]
    return api


def cli(
    data_dir: Path, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m core --data-dir DATA ARGS`` as a user runs it: a process of its own, the
    environment as the tests set it (no developer's MANYANGLES_* variables), plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "core", "--data-dir", str(data_dir), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=timeout,
    )


def embedder_photos(client: httpx.Client, since: float) -> int:
    """Faces of photos (not views) the Embedder analysed since ``since`` (its batching record):
    a photo the API replica analysed itself (serve/near.py) is not counted."""
    recent = client.get("/v1/stats/batching", headers=AUTH, params={"recent": 10_000}).json()["recent"]
    return sum(b["faces"] for b in recent if b["kind"] == "photos" and b["time"] > since)


def dead_pid() -> int:
    """The id of a process that has ended (a job "killed" without killing anything)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
