"""GallerySearch: exact and HNSW paths agree, the re-rank is exact, refresh reads only changes."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from bench.search import gallery, unit
from core.search.index import GallerySearch, Hit
from core.store.records import Enrollment, NewEmbedding, NewImage


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    vectors, persons, centres = gallery(3000, 64, 5, rng)
    probes = unit(centres[rng.integers(0, len(centres), 200)] + 0.75 * unit(rng.standard_normal((200, 64), np.float32)))
    originals = np.arange(3000) % 5 == 0
    return vectors, persons, originals, probes


def built(data, exact_max: int) -> GallerySearch:
    vectors, persons, originals, _ = data
    search = GallerySearch("m", exact_max=exact_max)
    search.add(np.arange(1, 3001, dtype=np.int64), persons, originals, vectors)
    return search


@pytest.mark.parametrize("rule", ["max", "top2", "mean", "blend"])
def test_index_path_agrees_with_exact_and_reranks_exactly(data, rule: str):
    exact, approx = built(data, exact_max=10**9), built(data, exact_max=1000)
    assert not exact.approximate and approx.approximate
    probes = data[3]
    agree = 0
    for probe in probes:
        e = {h.person_id: h.score for h in exact.search(probe, 50, rule)[0]}
        a = approx.search(probe, 5, rule)[0]
        agree += a[0].person_id == max(e, key=e.get)
        for hit in a:  # every score the index path returns is the exact rule score
            if hit.person_id in e:
                assert hit.score == pytest.approx(e[hit.person_id], abs=1e-5)
    assert agree / len(probes) >= 0.99


def test_remove_and_add_keep_the_index_consistent(data):
    search = built(data, exact_max=1000)
    vectors, persons, _, probes = data
    target = int(search.search(probes[0], 1, "max")[0][0].person_id)
    ids = np.flatnonzero(persons == target) + 1
    assert search.remove(ids) == len(ids) and search.size == 3000 - len(ids)
    assert all(h.person_id != target for h in search.search(probes[0], 20, "max")[0])
    search.add(ids, persons[ids - 1], np.zeros(len(ids), bool), vectors[ids - 1])
    assert search.search(probes[0], 1, "max")[0][0].person_id == target


def _person(name: str, vectors: np.ndarray, model: str = "m") -> Enrollment:
    images = [
        NewImage(
            f"{name}{i}".encode(),
            hashlib.sha256(f"{name}{i}".encode()).hexdigest(),
            ".jpg",
            "image/jpeg",
            1,
            1,
            "original" if i == 0 else f"augmented_v{i}",
            f"{i}.jpg",
        )
        for i in range(len(vectors))
    ]
    embeddings = [NewEmbedding(i, images[i].source, model, v, 0.9, (0, 0, 1, 1)) for i, v in enumerate(vectors)]
    return Enrollment(name, images, embeddings)


def test_refresh_reads_only_what_changed(tmp_path: Path, open_store):
    store = open_store(tmp_path / "data")
    rng = np.random.default_rng(0)
    ids = [store.add_person(_person(f"p{i}", unit(rng.standard_normal((3, 16), np.float32)))) for i in range(5)]
    search = GallerySearch("m")
    assert search.refresh(store) == (15, 0)
    assert search.refresh(store) == (0, 0)  # nothing changed: nothing read
    store.delete_person(ids[1])
    new = store.add_person(_person("late", unit(rng.standard_normal((2, 16), np.float32))))
    assert search.refresh(store) == (2, 3)
    assert search.size == 14
    probe = unit(rng.standard_normal(16, np.float32))
    found = {h.person_id for h in search.search(probe, 10, "top2")[0]}
    assert ids[1] not in found and new in found
    store.add_person(_person("other model", unit(rng.standard_normal((1, 16), np.float32)), model="n"), any_model=True)
    assert search.refresh(store) == (0, 0)


def test_background_build_searches_exactly_until_the_index_is_ready(data):
    """The service's mode: crossing exact_max starts the build on a thread; answers stay exact
    meanwhile; persons added and removed during the build are in the installed index."""
    vectors, persons, originals, probes = data
    exact = built(data, exact_max=10**9)
    search = GallerySearch("m", exact_max=1000, background=True)
    search.add(np.arange(1, 2001, dtype=np.int64), persons[:2000], originals[:2000], vectors[:2000])
    building = search._build
    assert building is not None and not search.approximate
    search.add(np.arange(2001, 3001, dtype=np.int64), persons[2000:], originals[2000:], vectors[2000:])  # meanwhile
    gone = int(persons[0])
    search.remove(np.flatnonzero(persons == gone) + 1)
    assert search._dirty >= {gone, int(persons[2500])}
    assert search.wait_ready(timeout=60) and search.approximate and building.index is search._index
    assert len(search._index) == len(np.unique(persons)) - 1  # every person's template but the removed one
    agree = 0
    for probe in probes:
        want = [h.person_id for h in exact.search(probe, 5, "max")[0] if h.person_id != gone][0]
        agree += search.search(probe, 1, "max")[0][0].person_id == want
    assert agree / len(probes) >= 0.99


def test_the_removal_log_is_pruned_and_a_reader_behind_it_reloads(tmp_path: Path, open_store):
    from core.store.removals import KEEP_S, prune_removals, removed_embeddings

    store = open_store(tmp_path / "data")
    rng = np.random.default_rng(1)
    ids = [store.add_person(_person(f"p{i}", unit(rng.standard_normal((3, 16), np.float32)))) for i in range(4)]
    idle, current = GallerySearch("m"), GallerySearch("m")
    assert idle.refresh(store) == (12, 0) and current.refresh(store) == (12, 0)
    store.delete_person(ids[0])  # 3 removals, seq 1-3
    assert prune_removals(store) == 0  # a minute old, not a day: kept
    assert current.refresh(store) == (0, 3)  # this one saw them
    later = time.time() + KEEP_S + 60
    assert prune_removals(store, now=later) == 3 and prune_removals(store, now=later) == 0
    removals = removed_embeddings(store, "m", 0)
    assert (removals.last, removals.ids, removals.floor) == (3, [], 3)  # the log is empty, the floor kept
    # the idle one never saw removals 1-3 and cannot any more: it reloads the whole gallery
    assert idle.refresh(store) == (9, 0) and idle.size == 9
    assert ids[0] not in {h.person_id for h in idle.search(unit(rng.standard_normal(16, np.float32)), 10, "max")[0]}
    assert current.refresh(store) == (0, 0) and current.size == 9  # up to date: no reload
    store.delete_person(ids[1])  # seq 4-6: after the floor, read as usual
    assert idle.refresh(store) == (0, 3) and current.refresh(store) == (0, 3)


def _positions_read(monkeypatch, reader: str) -> list[int]:
    """Each call of the store reader ``reader`` that GallerySearch makes, by the position it reads after."""
    import core.search.index as index

    calls: list[int] = []
    read = getattr(index, reader)
    monkeypatch.setattr(index, reader, lambda *a: calls.append(a[2]) or read(*a))
    return calls


def _three_persons(store, rng: np.random.Generator) -> list[int]:
    return [store.add_person(_person(f"p{i}", unit(rng.standard_normal((2, 16), np.float32)))) for i in range(3)]


def test_an_unchanged_gallery_is_refreshed_without_reading_its_vectors(tmp_path: Path, open_store, monkeypatch):
    """The store's change counter is read with the removal log: unmoved, no embedding was added,
    and the refresh reads no vectors (one round trip less per identify on PostgreSQL); a writer
    elsewhere (another store on the same gallery: another process) moves it."""
    store = open_store(tmp_path / "data")
    reads = _positions_read(monkeypatch, "embeddings_after")
    rng = np.random.default_rng(2)
    ids = _three_persons(store, rng)
    search = GallerySearch("m")
    assert search.refresh(store) == (6, 0) and len(reads) == 1
    assert search.refresh(store) == (0, 0) and search.refresh(store) == (0, 0) and len(reads) == 1
    elsewhere = open_store(tmp_path / "data")
    late = elsewhere.add_person(_person("late", unit(rng.standard_normal((2, 16), np.float32))))
    assert search.refresh(store) == (2, 0) and reads[-1] == search.last_id - 2
    elsewhere.delete_person(ids[0])
    assert search.refresh(store) == (0, 2) and search.size == 6
    assert search.refresh(store) == (0, 0) and len(reads) == 3
    assert late in {h.person_id for h in search.search(unit(rng.standard_normal(16, np.float32)), 10, "max")[0]}


def test_hits_are_named_without_a_read_until_a_person_changes(tmp_path: Path, open_store, monkeypatch):
    """LiveSearch keeps the names it read while the gallery's change counter stands; a rename or
    an erasure by another writer is in the very next answer."""
    from core.search.live import LiveSearch

    store = open_store(tmp_path / "data")
    rng = np.random.default_rng(3)
    vectors = unit(rng.standard_normal((2, 16), np.float32))
    ids = [store.add_person(_person(name, vectors[i : i + 1])) for i, name in enumerate(("Ann", "Bo"))]
    live = LiveSearch(store, exact_max=1000)
    asked: list[set[int]] = []
    names = store.person_names
    monkeypatch.setattr(store, "person_names", lambda wanted: asked.append(set(wanted)) or names(wanted))

    def top(probe: np.ndarray) -> tuple[int | None, str]:
        [match] = live.match("m", probe[None], 1, "max", 0.5, 0.0)
        return match.candidates[0].person_id, match.candidates[0].name

    assert top(vectors[0]) == (ids[0], "Ann") and len(asked) == 1
    assert top(vectors[0]) == (ids[0], "Ann") and len(asked) == 1  # unchanged: no read
    assert top(vectors[1]) == (ids[1], "Bo") and asked[-1] == {ids[1]}  # a person not read yet
    elsewhere = open_store(tmp_path / "data")
    elsewhere.rename_person(ids[0], "Ann B")
    assert top(vectors[0]) == (ids[0], "Ann B")
    # names read while another call's refresh saw a rename commit: answered, but not kept (they
    # may predate the rename)
    elsewhere.rename_person(ids[1], "Bo C")

    def stale_read(wanted: set[int]) -> dict[int, str]:
        asked.append(set(wanted))
        live.search("m", vectors[1][None], 1, "max", 0.0)  # another call refreshes: the counter moves
        return {ids[1]: "Bo"}  # as read before the rename committed

    with live._names_lock:  # this call's refresh as the one before the rename (nothing of Bo kept)
        live._names, live._names_at = {}, -1
    monkeypatch.setattr(store, "person_names", stale_read)
    hits = [[Hit(ids[1], 0.9)]]
    assert live.named(hits, 0.5)[0].candidates[0].name == "Bo"
    monkeypatch.setattr(store, "person_names", lambda wanted: asked.append(set(wanted)) or names(wanted))
    calls = len(asked)
    assert top(vectors[1]) == (ids[1], "Bo C") and len(asked) == calls + 1  # read again: the stale name not kept
    elsewhere.delete_person(ids[0])
    assert top(vectors[0]) == (ids[1], "Bo C")


def test_a_search_reads_its_thresholds_and_the_active_model_at_once(tmp_path: Path, open_store):
    from core.errors import ModelSwitching
    from core.faces.pipeline import ModelInfo
    from core.search.rules import VIEWS_OFFSET_TAIL
    from core.search.thresholds import Thresholds
    from core.settings import Settings
    from core.store.model_versions import activate_model, register_model
    from core.store.records import StoredThreshold

    store = open_store(tmp_path / "data")
    store.set_threshold(StoredThreshold("m", "fpir", "max", 0.01, 0.61, 100, "set", "t"))
    store.set_threshold(StoredThreshold("m", "views_offset", "max", VIEWS_OFFSET_TAIL, 0.03, 100, "set", "t"))
    store.set_threshold(StoredThreshold("n", "fpir", "max", 0.01, 0.99, 100, "set", "t"))
    read = store.model_thresholds("m")  # no active model yet: the calibrations still come
    model = ModelInfo("m", 16, "cpu", "d", 1)
    settings = Settings(match_mode="max", target_fpir=0.01, views_offset=None)
    assert Thresholds(settings, store).read_once(model).identify(model) == 0.61  # and nothing is refused
    assert read.active is None and {(r.kind, r.threshold) for r in read.rows} == {
        ("fpir", 0.61),
        ("views_offset", 0.03),
    }
    register_model(store, "m", 16, {}, {"max": 0.6}, activate_if_none=True)
    register_model(store, "n", 16, {}, {"max": 0.6})
    once = Thresholds(settings, store).read_once(model)
    assert (once.identify(model), once.views_offset(model)) == (0.61, 0.03)
    store.set_threshold(StoredThreshold("m", "fpir", "max", 0.01, 0.7, 100, "set", "t"))
    assert once.identify(model) == 0.61 and Thresholds(settings, store).identify(model) == 0.7  # one read, kept
    assert store.model_thresholds("n").active == "m" and store.model_thresholds("unknown").rows == ()
    activate_model(store, "n", {"max": 0.6}, allow_missing=True)
    with pytest.raises(ModelSwitching, match="the active model is now n"):
        Thresholds(settings, store).read_once(model)


def test_thresholds_read_while_the_photo_was_analysed_serve_only_their_model(tmp_path: Path, open_store):
    from core.errors import ModelSwitching
    from core.faces.pipeline import ModelInfo
    from core.search.thresholds import Thresholds
    from core.settings import Settings
    from core.store.model_versions import activate_model, register_model
    from core.store.records import StoredThreshold

    store = open_store(tmp_path / "data")
    settings = Settings(match_mode="max", target_fpir=0.01, views_offset=None)
    register_model(store, "m", 16, {}, {"max": 0.6}, activate_if_none=True)
    register_model(store, "n", 16, {}, {"max": 0.6})
    store.set_threshold(StoredThreshold("m", "fpir", "max", 0.01, 0.61, 100, "set", "t"))
    store.set_threshold(StoredThreshold("n", "fpir", "max", 0.01, 0.77, 100, "set", "t"))
    m, n = ModelInfo("m", 16, "cpu", "d", 1), ModelInfo("n", 16, "cpu", "d", 1)
    early = store.model_thresholds("m")
    store.set_threshold(StoredThreshold("m", "fpir", "max", 0.01, 0.65, 100, "set", "t"))
    assert Thresholds(settings, store).read_once(m, early).identify(m) == 0.61  # the early read, no other
    activate_model(store, "n", {"max": 0.6}, allow_missing=True)
    # the Embedder switched to n after the early read of m: n's own read, and no refusal
    assert Thresholds(settings, store).read_once(n, early).identify(n) == 0.77
    # an early read made after the switch refuses an analysis by the model before it
    with pytest.raises(ModelSwitching, match="the active model is now n"):
        Thresholds(settings, store).read_once(m, store.model_thresholds("m"))


def test_the_reads_ahead_of_a_search_are_the_pointer_its_calibrations_and_the_marks(tmp_path: Path, open_store):
    """core/store/search_reads.py's one statement answers what its three reads would."""
    from core.store.model_versions import activate_model, active_model, register_model
    from core.store.records import StoredThreshold
    from core.store.removals import ChangeMarks, read_marks
    from core.store.search_reads import read_ahead

    store = open_store(tmp_path / "data")

    def marks_now() -> ChangeMarks:  # the marks' statement alone
        with store.reader() as conn:
            return read_marks(conn)

    empty = read_ahead(store)  # a new gallery: no active model, the marks all the same
    assert (empty.active, empty.thresholds, empty.marks) == (None, None, marks_now())
    register_model(store, "m", 16, {"embedder": "x"}, {"max": 0.6}, activate_if_none=True)
    register_model(store, "n", 16, {}, {"max": 0.5})
    uncalibrated = read_ahead(store)
    assert uncalibrated.active == active_model(store) and uncalibrated.active.spec == {"embedder": "x"}
    assert uncalibrated.thresholds == store.model_thresholds("m") and uncalibrated.thresholds.rows == ()
    store.set_threshold(StoredThreshold("m", "fpir", "max", 0.01, 0.61, 100, "set", "t"))
    store.set_threshold(StoredThreshold("m", "gate_fmr", "", 0.001, 0.4, 100, "set", "t"))
    store.set_threshold(StoredThreshold("n", "fpir", "max", 0.01, 0.77, 100, "set", "t"))
    reads = read_ahead(store)
    assert reads.thresholds == store.model_thresholds("m") and len(reads.thresholds.rows) == 2
    activate_model(store, "n", {"max": 0.5}, allow_missing=True)
    switched = read_ahead(store)
    assert switched.active is not None and switched.active.name == "n"
    assert switched.thresholds == store.model_thresholds("n") and switched.thresholds.active == "n"
    store.add_person(_person("ann", unit(np.random.default_rng(3).standard_normal((2, 16), np.float32)), "n"))
    moved = read_ahead(store)
    assert moved.marks == marks_now() and moved.marks.changes > switched.marks.changes


def test_a_search_never_goes_back_to_the_model_switched_from(tmp_path: Path, open_store, monkeypatch):
    """A request analysed by the old model that reaches the search after one by the new model is
    refused (retry), and the old model's gallery is not loaded again."""
    import core.search.live as live_module
    from core.errors import ModelSwitching
    from core.search.live import LiveSearch
    from core.store.model_versions import activate_model, register_model

    store = open_store(tmp_path / "data")
    register_model(store, "m", 16, {}, {"max": 0.6}, activate_if_none=True)
    register_model(store, "n", 16, {}, {"max": 0.6})
    rng = np.random.default_rng(5)
    loads: list[str] = []
    real = live_module.GallerySearch
    monkeypatch.setattr(live_module, "GallerySearch", lambda model, **kw: loads.append(model) or real(model, **kw))
    live = LiveSearch(store, exact_max=1000)
    probe = unit(rng.standard_normal((1, 16), np.float32))
    assert live.size("m") == 0  # an empty gallery: the switch needs no re-embedding here
    activate_model(store, "n", {"max": 0.6}, allow_missing=True)
    assert live.size("m") == 0  # the search has not moved yet: a request that started before the switch
    assert live.size("n") == 0  # the first request by the new model moves it (no vectors of n yet)
    with pytest.raises(ModelSwitching, match="the active model is now n"):
        live.search("m", probe, 5, "max", 0.0)
    assert live.size("n") == 0 and loads == ["m", "n"]  # n stayed loaded, m was not loaded back


def test_marks_read_ahead_spare_the_refresh_only_when_nothing_changed(tmp_path: Path, open_store, monkeypatch):
    """An identify reads the store's change marks before its search (with the active model, while
    the Embedder works or before the analysis in process): a search up to them
    reads nothing after the analysis, one whose removal log position they match reads only the new
    vectors; a deletion or enrollment answered before the marks were read is never missed; stale
    marks (a request that read them before another refreshed the search) read as before, and never
    move the search back."""
    from core.store.search_reads import read_ahead

    store = open_store(tmp_path / "data")
    logs = _positions_read(monkeypatch, "removed_embeddings")
    rng = np.random.default_rng(3)
    ids = _three_persons(store, rng)
    search = GallerySearch("m")
    assert search.refresh(store, read_ahead(store).marks) == (6, 0) and not logs  # the log is empty
    assert search.refresh(store, read_ahead(store).marks) == (0, 0) and not logs  # up to them: no read
    stale = read_ahead(store).marks
    store.delete_person(ids[0])  # answered before the next request's marks are read
    assert search.refresh(store, read_ahead(store).marks) == (0, 2) and len(logs) == 1
    assert search.size == 4
    assert search.refresh(store, stale) == (0, 0) and len(logs) == 2 and search.size == 4  # read, nothing new
    assert search.up_to(read_ahead(store).marks)  # not moved back to the stale marks
    store.add_person(_person("late", unit(rng.standard_normal((2, 16), np.float32))))
    assert search.refresh(store, read_ahead(store).marks) == (2, 0) and search.size == 6
    assert len(logs) == 2  # no removal since its marks: only the new vectors were read
