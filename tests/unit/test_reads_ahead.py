"""An identify reads the store once before its search (core/store/search_reads.py): the analyzer
takes the active-model pointer from that read, the search its thresholds and change marks; a
read that fails leaves each to read what it needs, and the answer is the same."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_near import join_loads, near_faces

import core.faces.active as active_module
import core.search.index as index_module
import core.store.search_reads as search_reads
import serve.near as near_module
from core.errors import StoreUnavailable
from core.settings import Settings
from core.store.model_versions import active_model
from core.store.removals import read_marks

from conftest import photo_bytes


def counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, fail: Exception | None = None) -> list[int]:
    """Calls of ``module.name`` counted (the real function runs, unless ``fail`` is raised)."""
    calls: list[int] = []
    real = getattr(module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if fail is not None:
            raise fail
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_an_identify_reads_the_store_once_before_its_search(service, monkeypatch: pytest.MonkeyPatch):
    service.enroll("Barack Obama", photo_bytes("Barack_Obama"))
    service.identify(photo_bytes("Barack_Obama", 2))  # the search loads the gallery
    ahead = counting(monkeypatch, search_reads, "read_ahead")
    pointer = counting(monkeypatch, active_module, "active_model")
    thresholds = counting(monkeypatch, service.store, "model_thresholds")
    after = [counting(monkeypatch, index_module, name) for name in ("removed_embeddings", "embeddings_after")]
    names = counting(monkeypatch, service.store, "person_names")
    found = service.identify(photo_bytes("Barack_Obama", 2))
    assert found.faces[0].match.identity.name == "Barack Obama"
    assert (len(ahead), len(pointer), len(thresholds)) == (1, 0, 0)  # one statement, nothing read again
    assert after == [[], []] and not names  # the marks say unchanged: the search reads nothing either


@pytest.mark.parametrize("fault", [StoreUnavailable("the database did not answer"), KeyError("change_seq")])
def test_a_failed_read_ahead_is_read_piece_by_piece_with_the_same_answer(
    service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fault: Exception
):
    service.enroll("Barack Obama", photo_bytes("Barack_Obama"))
    expected = service.identify(photo_bytes("Barack_Obama", 2))
    counting(monkeypatch, search_reads, "read_ahead", fail=fault)
    pointer = counting(monkeypatch, active_module, "active_model")
    thresholds = counting(monkeypatch, service.store, "model_thresholds")
    with caplog.at_level(logging.DEBUG, logger="core.store.search_reads"):
        found = service.identify(photo_bytes("Barack_Obama", 2))
    assert found.faces[0].match.identity.name == "Barack Obama"
    assert found.faces[0].match.identity.score == pytest.approx(expected.faces[0].match.identity.score)
    assert (found.threshold, found.match_mode) == (expected.threshold, expected.match_mode)
    assert (len(pointer), len(thresholds)) == (1, 1)  # each read where it is needed, once
    levels = {r.levelname for r in caplog.records if "reads ahead" in r.getMessage()}
    # a store outage is routine (the request reads again and answers 503 if it is still down);
    # anything else is a fault an operator must see
    assert levels == ({"DEBUG"} if isinstance(fault, StoreUnavailable) else {"WARNING"})


def test_the_api_replica_takes_the_pointer_from_the_read_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    near, embedder = near_faces(tmp_path, Settings(), "CPUExecutionProvider")
    near.analyze(photo_bytes("Barack_Obama", 2))  # the device check, once
    pointer = counting(monkeypatch, near_module, "active_model")
    reads = search_reads.ReadsAhead(near.store)
    assert near.submit(photo_bytes("Barack_Obama", 2), None, reads)().faces
    assert embedder.sent == 0 and not pointer  # analysed here, the pointer not read again
    assert reads.active() == active_model(near.store)


def test_a_pointer_read_before_a_switch_does_not_load_the_model_switched_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A request whose read ahead names a model the pointer has left (it read just before a
    switch) sends its photo to the Embedder and loads nothing: the loader reads the pointer again."""
    near, embedder = near_faces(tmp_path, Settings(), "CPUExecutionProvider")
    current = active_model(near.store)
    assert current is not None
    stale = replace(current, name="arcface-before-the-switch")  # what a read before a switch named
    with near.store.reader() as conn:
        marks = read_marks(conn)
    reads = search_reads.ReadsAhead(near.store)
    monkeypatch.setattr(reads, "get", lambda: search_reads.SearchReads(stale, None, marks))
    loads = counting(monkeypatch, near, "_load")
    pointer = counting(monkeypatch, near_module, "active_model")
    assert near.submit(photo_bytes("Barack_Obama", 2), None, reads)().faces
    assert embedder.sent == 1  # the copy is not of the model read: the Embedder analysed it
    join_loads()
    assert len(pointer) == 1  # the loader started and read the pointer (the request did not)
    assert not loads and near._copy is not None and near._copy.info.name == current.name


def test_an_in_process_analyzer_never_loads_back_a_model_read_before_a_switch(service, monkeypatch: pytest.MonkeyPatch):
    """The CLI's analyzer (core/faces/active.py) handed a pointer read before a switch, to a model
    it does not hold: it reads the pointer again and analyses with the active model, loading nothing."""
    current = active_model(service.store)
    assert current is not None
    stale = replace(current, name="arcface-before-the-switch")
    reads = search_reads.ReadsAhead(service.store)
    monkeypatch.setattr(reads, "get", lambda: search_reads.SearchReads(stale, None, None))  # type: ignore[arg-type]
    loads = counting(monkeypatch, service.faces, "_load")
    pointer = counting(monkeypatch, active_module, "active_model")
    analysed = service.faces.submit(photo_bytes("Barack_Obama", 2), None, reads)()
    assert analysed.model.name == current.name and not loads and len(pointer) == 1
