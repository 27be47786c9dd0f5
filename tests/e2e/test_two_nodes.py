"""Two Ray nodes that share no disk, one PostgreSQL gallery (issue 41).

A Ray head and a second node joined by address (``ray start``, each its own process group,
resources and ports), a PostgreSQL server started by the test session, and the application
deployed as an operator would: the API on two replicas, one per node (a custom resource each
node offers once), the Embedder and Generator on the head. The replicas' data dir is a path
that holds nothing: the test checks it was never created. Then:

- an enrollment answered by one API replica is identified by the other in the first identify it
  answers, sent within 1 s of that answer, and a person deleted through one is never identified
  after the DELETE answered (which replica answered is read from Serve's replica logs by the
  request id, after the identifies: reading logs between them would count in the 1 s);
- the Ray Data re-embedding runs one model actor on each node and writes into PostgreSQL;
- 200 mixed requests from 32 clients while the second node is killed (raylet, object store and
  workers: SIGKILL to its process group) part way: every request is answered, those the dead
  node's API replica held with a typed 503 ``answer_lost`` (serve/proxy_errors.py, never a bare
  500), the service goes on answering from the head, and the database holds every enrollment that
  answered 201, whole, and nothing of one refused.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from ray_nodes import RayCluster

from serve.proxy_errors import proxy_environment

from conftest import REPO, free_port, photo_bytes

log = logging.getLogger(__name__)
KEY = "two-nodes-key"
AUTH = {"X-API-Key": KEY}
PEOPLE = ["Barack_Obama", "Angelina_Jolie", "George_Clooney", "Matt_Damon", "Katy_Perry", "Scarlett_Johansson"]

DEPLOY = """
import json, sys
import ray
from ray import serve
from core.settings import Settings
from serve.app import compose
from serve.config import deployment_options

args = json.loads(sys.argv[1])
ray.init(address=args["address"], logging_level="ERROR")
serve.start(http_options={"host": "127.0.0.1", "port": args["http_port"]}, proxy_location="HeadOnly")
options = deployment_options()
options["API"]["num_replicas"] = 2
options["API"]["ray_actor_options"]["resources"] = {"api_slot": 1}  # each node offers one
for name in ("Embedder", "Generator"):
    options[name]["ray_actor_options"]["resources"] = {"head_node": 0.1}
settings = Settings(data_dir=args["data_dir"], store_url=args["url"], api_key=args["key"])
serve.run(compose(settings, options), name="manyangles", route_prefix="/", blocking=False)
nodes = {}
for deployment, status in serve.status().applications["manyangles"].deployments.items():
    nodes[deployment] = status.status
print(json.dumps(nodes))
"""

ACTORS = """
import json, sys
from ray.util.state import list_actors
actors = list_actors(address=sys.argv[1] and json.loads(sys.argv[1])["dashboard"], detail=True, limit=10000)
print(json.dumps([{"class": a.class_name, "node": a.node_id, "state": a.state} for a in actors]))
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("two-nodes")
    # short: Ray's socket paths must stay under 108 bytes. The proxy (on the head) would send every
    # request to the head's replica while it keeps up (Serve prefers the proxy's node): spread them
    ray = RayCluster(
        Path(f"/tmp/ma-ray-{free_port()}"),
        env={"RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0", **proxy_environment()},
    )
    try:
        ray.head(2, {"head_node": 1, "api_slot": 1}, dashboard=True)  # the state API: where actors ran
        ray.wait_for(1)
        second = ray.join(2, {"api_slot": 1})
        ray.wait_for(2)
        http_port = ray.new_port()
        url = postgres.new_database()
        data_dir = root / "nothing-here"
        status = on_cluster(
            ray, DEPLOY, address=ray.address, http_port=http_port, url=url, key=KEY, data_dir=str(data_dir)
        )
        assert set(status) == {"API", "Embedder", "Generator"}, status
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=120) as client:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            yield {"client": client, "ray": ray, "second": second, "url": url, "data_dir": data_dir}
    finally:
        ray.stop()


def on_cluster(ray: RayCluster, script: str, **values: object) -> object:
    """``script`` as a client of the cluster (its authentication mode), the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(values)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ray.client_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def replica_of(ray: RayCluster, request_id: str) -> str:
    """The API replica that served the request (Serve logs each request with its id; each node
    keeps its logs in its own temp dir)."""
    for _ in range(50):
        for temp in (ray.temp, *ray.temps):
            for log_file in (temp / "session_latest" / "logs" / "serve").glob("replica_manyangles_API_*.log"):
                if request_id in log_file.read_text(errors="ignore"):
                    return log_file.name
        time.sleep(0.1)
    raise AssertionError(f"no API replica logged request {request_id}")


def _enroll(client: httpx.Client, name: str, who: str, force: bool = False) -> httpx.Response:
    data = {"name": name, "face": "largest"} | ({"force": "true"} if force else {})
    return client.post(
        "/v1/persons", headers=AUTH, data=data, files={"photo": ("p.jpg", photo_bytes(who), "image/jpeg")}
    )


def _identify(client: httpx.Client, who: str, n: int = 2) -> httpx.Response:
    return client.post("/v1/identify", headers=AUTH, files={"photo": ("p.jpg", photo_bytes(who, n), "image/jpeg")})


def _named(response: httpx.Response) -> set[str]:
    body = response.json()
    return {f["label"] for f in body["faces"] if f.get("identity")}


def test_what_one_node_answered_the_other_node_sees(cluster):
    client, ray = cluster["client"], cluster["ray"]
    enrolled = _enroll(client, "Angelina Jolie", "Angelina_Jolie")
    assert enrolled.status_code == 201, enrolled.text
    answered = time.perf_counter()
    sent: list[tuple[float, str]] = []  # (when, after the answer), request id: replicas are read after
    for _ in range(12):  # back to back; the proxy spreads them over both replicas at random
        at = time.perf_counter() - answered
        identified = _identify(client, "Angelina_Jolie")
        assert identified.status_code == 200 and "Angelina Jolie" in _named(identified), identified.text
        sent.append((at, identified.headers["x-request-id"]))
    by = replica_of(ray, enrolled.headers["x-request-id"])
    elsewhere = [at for at, request_id in sent if replica_of(ray, request_id) != by]
    assert elsewhere, "every identify went to the replica that enrolled"
    assert elsewhere[0] <= 1.0, f"the first identify the other replica answered was sent {elsewhere[0]:.2f} s after"
    person = enrolled.json()["person_id"]
    deleted = client.delete(f"/v1/persons/{person}", headers=AUTH)
    assert deleted.status_code == 200, deleted.text
    deleted_by, others = replica_of(ray, deleted.headers["x-request-id"]), set()
    for _ in range(20):
        identified = _identify(client, "Angelina_Jolie")
        assert "Angelina Jolie" not in _named(identified)
        others.add(replica_of(ray, identified.headers["x-request-id"]))
    assert others - {deleted_by}, "no identify reached the other replica after the delete"


def test_the_reembed_runs_on_both_nodes_into_postgres(cluster):
    client, ray = cluster["client"], cluster["ray"]
    for who in PEOPLE:  # enough work that both model actors start before it is done
        assert _enroll(client, who.replace("_", " ") + " R", who, force=True).status_code == 201
    env = ray.client_env(MANYANGLES_STORE_URL=cluster["url"], MANYANGLES_API_KEY=KEY)
    done = subprocess.run(
        [sys.executable, "-m", "core", "--data-dir", str(cluster["data_dir"]), "--json", "reembed", "--model", "dlib",
         "--no-switch", "--workers", "2", "--batch-size", "1", "--address", ray.address],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["embedded"] >= 6 and not report["switched"], report
    actors = on_cluster(ray, ACTORS, dashboard=f"http://127.0.0.1:{ray.dashboard_port}")
    nodes = {a["node"] for a in actors if "ReembedWorker" in a["class"]}
    assert len(nodes) == 2, actors


def test_the_console_reads_the_postgres_gallery_through_the_api(cluster):
    """The console's Gallery on PostgreSQL: its snapshot of the API's tables, kept by change token
    (what remote mode does today), equal to a fresh read after a change on either replica."""
    from console.analytics import SNAPSHOT_COLUMNS, RemoteTables, Snapshot, SnapshotCache, connect, persons_page
    from console.client import ApiClient

    client = cluster["client"]
    source = RemoteTables(ApiClient(str(client.base_url), KEY))

    def tables(snapshot: Snapshot) -> dict[str, list[tuple]]:
        con = connect(snapshot)
        return {t: con.execute(f"SELECT * FROM g.{t} ORDER BY ALL").fetchall() for t in SNAPSHOT_COLUMNS}

    cache = SnapshotCache(source, max_age_s=3600.0)
    first = cache.get()
    assert _enroll(client, "Console Check", "Katy_Perry", force=True).status_code == 201
    cache.expire()
    second = cache.get()
    assert second.updated == 1 and second.token != first.token  # only the new person's rows read
    frame, total = persons_page(second, "Console Check", "name", 0)
    assert total == 1 and list(frame["name"]) == ["Console Check"]
    assert tables(second) == tables(Snapshot.load(source))


def test_two_hundred_requests_while_the_second_node_dies(cluster):
    client, second = cluster["client"], cluster["second"]
    names = [f"Load {k}" for k in range(60)]
    outcomes: list[tuple[str, str, int, str]] = []  # kind, name, status, body's code
    lock = threading.Lock()
    rng = random.Random(41)
    plan = [("enroll", names[k], PEOPLE[k % len(PEOPLE)]) for k in range(60)]
    plan += [("identify", "", PEOPLE[k % len(PEOPLE)]) for k in range(140)]
    rng.shuffle(plan)
    started = threading.Event()

    def one(step: tuple[str, str, str]) -> None:
        kind, name, who = step
        try:
            answer = _enroll(client, name, who, force=True) if kind == "enroll" else _identify(client, who, 1)
            code = (
                answer.json().get("error", {}).get("code", "")
                if answer.headers.get("content-type", "").startswith("application/json")
                else answer.text[:40]
            )
            row = (kind, name, answer.status_code, str(code))
        except httpx.HTTPError as exc:
            row = (kind, name, -1, type(exc).__name__)
        with lock:
            outcomes.append(row)
            if len(outcomes) == 60:
                started.set()

    killed_after: list[int] = []

    def kill() -> None:
        started.wait(300)
        second.kill()
        with lock:
            killed_after.append(len(outcomes))

    killer = threading.Thread(target=kill)
    killer.start()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, plan))
    killer.join()
    tally = Counter((kind, status, code) for kind, _, status, code in outcomes)
    log.info("the second node was killed after %s answers; answers: %s", killed_after, dict(tally))
    assert killed_after and killed_after[0] <= 150  # mid-load: at least 50 requests answered after the kill
    assert len(outcomes) == 200 and all(status != -1 for _, _, status, _ in outcomes), outcomes  # none lost
    assert all(status in (200, 201, 503) for _, _, status, _ in outcomes), outcomes  # no bare 500
    refused = Counter(code for _, _, status, code in outcomes if status == 503)
    assert set(refused) <= {"busy", "replica_lost", "model_switching", "answer_lost"}, refused  # typed, Retry-After
    # the requests the dead node's API replica held, answered by the proxy: of 32 clients in flight,
    # about half are on that node (12 in a logged run), so none there at the kill is not expected
    assert 0 < refused["answer_lost"] <= 32, refused
    after = [_identify(client, "Barack_Obama", 1).status_code for _ in range(10)]
    assert after == [200] * 10  # the head answers alone
    # an enrollment the lost replica held may have committed (stored whole) or not; a refused one never
    check_integrity(cluster["url"], {o[1] for o in outcomes if o[0] == "enroll" and o[2] == 201},
                    {o[1] for o in outcomes if o[0] == "enroll" and o[2] == 503 and o[3] != "answer_lost"})  # fmt: skip
    assert not cluster["data_dir"].exists()  # no replica needed the data dir


def check_integrity(url: str, answered: set[str], refused: set[str]) -> None:
    """Every enrollment that answered 201 is whole; none that was refused left a row; no image
    without its bytes, no vector without its image, no person without their photo."""
    import psycopg

    with psycopg.connect(url) as conn:
        persons = {name: pid for pid, name in conn.execute("SELECT id, name FROM persons")}
        assert answered <= set(persons) and not refused & set(persons)
        for name, pid in persons.items():
            if not name.startswith("Load"):
                continue
            originals = conn.execute(
                "SELECT count(*) FROM images WHERE person_id = %s AND source = 'original'", (pid,)
            ).fetchone()[0]
            vectors = conn.execute("SELECT count(*) FROM embeddings WHERE person_id = %s", (pid,)).fetchone()[0]
            assert originals == 1 and vectors >= 1, (name, originals, vectors)
        orphans = conn.execute(
            "SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM image_blobs b WHERE b.path = i.path)"
        ).fetchone()[0]
        assert orphans == 0
        loose = conn.execute(
            "SELECT count(*) FROM image_blobs b WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.path = b.path)"
        ).fetchone()[0]
        assert loose == 0
