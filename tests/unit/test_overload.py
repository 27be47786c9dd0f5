"""Admission under overload: each costly route's class, and a request refused at once when it
would wait too long (the 64-client run over HTTP: tests/service/test_overload_http.py)."""

from __future__ import annotations

import math

from serve.admission import HEADROOM, Admission, request_class


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
