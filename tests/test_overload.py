"""Overload: with 64 concurrent clients every request either succeeds within 15 s or is refused
(503 + Retry-After) within 1 s; none times out, and nothing is lost or half-stored."""

from __future__ import annotations

import logging
import math
import threading
import time

import httpx

from serve.admission import HEADROOM, Admission, request_class

from conftest import AUTH, FORCE, photo_bytes

log = logging.getLogger(__name__)  # figures for RELIABILITY.md: pytest --log-cli-level=INFO


def test_each_costly_route_has_its_admission_class():
    assert request_class("POST", "/v1/persons") == "enroll"
    assert request_class("POST", "/v1/persons/12/photos") == "enroll"
    assert request_class("POST", "/v1/persons/12/photos/") == "enroll"
    assert request_class("POST", "/v1/identify/") == "identify"
    assert request_class("POST", "/v1/persons/12") is None
    assert request_class("GET", "/v1/persons/12/photos") is None
    assert request_class("POST", "/v1/persons/x/photos") is None
    assert request_class("DELETE", "/v1/persons/12/images/3") is None


def test_admission_refuses_only_what_would_wait_too_long(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("serve.admission.time.monotonic", lambda: clock[0])
    gate = Admission(budget_s=2.0, min_in_flight=2)
    for _ in range(5):  # one request a second, one at a time: throughput 1/s while busy
        assert gate.enter("identify").admitted
        clock[0] += 1.0
        gate.leave("identify")
        clock[0] += 30.0  # idle time does not lower the measured throughput
    for _ in range(100):  # refusals (401, 422 ...) take no time: they must not make the class look fast
        assert gate.enter("identify").admitted
        gate.leave("identify", completed=False)
    assert gate.enter("identify").admitted and gate.enter("identify").admitted  # 2 in flight: 3 s > 2 s
    refused = gate.enter("identify")
    assert (
        not refused.admitted
        and refused.expected_s == 3.0 * HEADROOM
        and refused.retry_after_s == math.ceil(3.0 * HEADROOM - 2.0)
    )
    assert gate.enter("enroll").admitted  # another class has its own queue


def test_admission_counts_the_other_class_in_flight(monkeypatch):
    """Enrollments and identifies share the machine: work in flight of either delays both."""
    clock = [0.0]
    monkeypatch.setattr("serve.admission.time.monotonic", lambda: clock[0])

    def warmed() -> Admission:
        gate = Admission(budget_s=5.0, min_in_flight=2)
        for kind, seconds in [("identify", 1.0)] * 5 + [("enroll", 2.0)] * 4:  # 1/s and 0.5/s
            assert gate.enter(kind).admitted
            clock[0] += seconds
            gate.leave(kind)
        return gate

    alone = warmed()
    assert alone.enter("identify").admitted and alone.enter("identify").admitted
    assert alone.enter("identify").expected_s == HEADROOM * (2 / 1 + 1 / 1)  # 4.5 s: admitted

    shared = warmed()
    assert shared.enter("enroll").admitted  # 2 s of work in flight
    assert shared.enter("identify").admitted and shared.enter("identify").admitted
    refused = shared.enter("identify")
    assert not refused.admitted and refused.expected_s == HEADROOM * (1 / 0.5 + 2 / 1 + 1 / 1)  # 7.5 s
    assert refused.retry_after_s == 3


def test_64_clients_succeed_in_time_or_are_refused_at_once(api: httpx.Client):
    probe = photo_bytes("Barack_Obama", 2)
    results: list[tuple[int, str, int, float, httpx.Response]] = []
    barrier = threading.Barrier(64)

    def client(i: int) -> None:
        with httpx.Client(base_url=api.base_url, timeout=60) as http:
            barrier.wait()
            started = time.perf_counter()
            if i % 8 == 0:  # some enrollments in the mix
                kind = "enroll"
                response = http.post(
                    "/v1/persons",
                    headers=AUTH,
                    data={"name": f"Load Person {i}", **FORCE},
                    files={"photo": ("p.jpg", photo_bytes("Angelina_Jolie", 1 + i % 3), "image/jpeg")},
                )
            else:
                kind = "identify"
                response = http.post("/v1/identify", headers=AUTH, files={"photo": ("q.jpg", probe, "image/jpeg")})
            results.append((i, kind, response.status_code, time.perf_counter() - started, response))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 64  # no client timed out (httpx would have raised)
    ok = sorted(e for _, _, status, e, _ in results if status in (200, 201))
    shed = sorted(e for _, _, status, e, _ in results if status == 503)
    log.info(
        "64 clients: %d ok (slowest %.1f s), %d refused (slowest %.2f s)",
        len(ok),
        ok[-1] if ok else 0,
        len(shed),
        shed[-1] if shed else 0,
    )
    for _, kind, status, elapsed, response in results:
        if status in (200, 201):
            assert elapsed <= 15.0, f"{kind} succeeded after {elapsed:.1f} s"
        else:
            assert status == 503, (kind, status, response.text)
            assert elapsed <= 1.0, f"{kind} refused after {elapsed:.1f} s"
            assert response.json()["error"]["code"] == "busy" and int(response.headers["retry-after"]) >= 1
    persons = {p["name"] for p in api.get("/v1/persons", headers=AUTH, params={"limit": 1000}).json()["persons"]}
    for i, kind, status, _, _ in results:
        if kind == "enroll":  # stored exactly when it answered 201
            assert (f"Load Person {i}" in persons) == (status == 201), (i, status)
