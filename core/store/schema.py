"""SQLite schema of the gallery and its migrations.

Plain column types only (INTEGER, REAL, TEXT, BLOB) so that DuckDB's sqlite scanner reads every
table as it is. Timestamps are ISO-8601 UTC text. Vectors are little-endian float32 BLOBs.
The schema version lives in ``PRAGMA user_version``; migration ``i`` takes it from i to i + 1.
"""

from __future__ import annotations

import sqlite3

from core.errors import StoreSchemaError


def _record_change(person: str, if_present: bool = False) -> str:
    """A trigger's statement: ``person`` changed at the counter's current number (``if_present``:
    only while the person exists; a deleted person's cascade leaves no trace of them)."""
    present = f" AND EXISTS (SELECT 1 FROM persons WHERE id = {person})" if if_present else ""
    return (
        f"        INSERT INTO person_changes(person_id, seq) SELECT {person}, value FROM store_meta\n"
        f"            WHERE key = 'change_seq'{present} ON CONFLICT(person_id) DO UPDATE SET seq = excluded.seq;\n"
    )


def _change_trigger(table: str, event: str, body: str) -> str:
    return f"""    CREATE TRIGGER {table}_changed_{event.lower()} AFTER {event} ON {table} BEGIN
        UPDATE store_meta SET value = value + 1 WHERE key = 'change_seq';
{body}    END;
"""


_FORGET_PERSON = """        DELETE FROM person_changes WHERE person_id = OLD.id;
        UPDATE store_meta SET value = (SELECT value FROM store_meta WHERE key = 'change_seq')
            WHERE key = 'change_deleted';
"""


MIGRATIONS: tuple[str, ...] = (
    # AUTOINCREMENT: ids are never reused, so a deleted person's id never names someone else.
    # 0 -> 1: the first schema
    """
    CREATE TABLE persons (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE images (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id     INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        sha256        TEXT NOT NULL,
        path          TEXT NOT NULL,          -- relative to the data dir
        source        TEXT NOT NULL,          -- 'original' or 'augmented_<view>'
        display_name  TEXT NOT NULL,          -- 'original.jpg', 'augmented_left_1.png', ...
        mime          TEXT NOT NULL,
        width         INTEGER NOT NULL,
        height        INTEGER NOT NULL,
        num_bytes     INTEGER NOT NULL,
        generator     TEXT,                   -- NULL for uploads; 'classic', 'sd15-img2img', ...
        created_at    TEXT NOT NULL
    );
    CREATE INDEX images_person ON images(person_id);
    CREATE INDEX images_sha ON images(sha256);
    CREATE TABLE embeddings (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id   INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        source      TEXT NOT NULL,
        model       TEXT NOT NULL,
        dim         INTEGER NOT NULL,
        vector      BLOB NOT NULL,            -- dim little-endian float32, unit L2 norm
        det_score   REAL NOT NULL,
        bbox_x1     REAL NOT NULL,
        bbox_y1     REAL NOT NULL,
        bbox_x2     REAL NOT NULL,
        bbox_y2     REAL NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE INDEX embeddings_model ON embeddings(model, person_id);
    CREATE TABLE generation_runs (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id       INTEGER REFERENCES persons(id) ON DELETE CASCADE,
        generator       TEXT NOT NULL,
        device          TEXT NOT NULL,
        dtype           TEXT NOT NULL,
        num_views       INTEGER NOT NULL,
        num_accepted    INTEGER NOT NULL,
        steps           INTEGER,
        strength        REAL,
        total_s         REAL NOT NULL,
        peak_mem_bytes  INTEGER,
        views_json      TEXT NOT NULL,        -- per view: name, seed, latency_s, accepted, reason, similarity
        created_at      TEXT NOT NULL
    );
    CREATE INDEX generation_runs_created ON generation_runs(created_at);
    CREATE TABLE thresholds (
        model        TEXT NOT NULL,
        kind         TEXT NOT NULL,           -- 'fpir' (1:N identification), 'gate_fmr' (identity gate)
        target       REAL NOT NULL,           -- the FPIR or FMR the threshold was calibrated for
        threshold    REAL NOT NULL,
        n_negative   INTEGER NOT NULL,        -- impostor searches or impostor pairs used
        dataset      TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        PRIMARY KEY (model, kind, target)
    );
    """,
    # 1 -> 2: identification thresholds per matching rule ('' for thresholds of no rule: the gate)
    """
    CREATE TABLE thresholds_v2 (
        model        TEXT NOT NULL,
        kind         TEXT NOT NULL,
        rule         TEXT NOT NULL,           -- 'max', 'mean', 'blend', 'top2'; '' for 'gate_fmr'
        target       REAL NOT NULL,
        threshold    REAL NOT NULL,
        n_negative   INTEGER NOT NULL,
        dataset      TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        PRIMARY KEY (model, kind, rule, target)
    );
    INSERT INTO thresholds_v2
        SELECT model, kind, CASE kind WHEN 'fpir' THEN 'max' ELSE '' END, target, threshold, n_negative,
               dataset, created_at
        FROM thresholds;
    DROP TABLE thresholds;
    ALTER TABLE thresholds_v2 RENAME TO thresholds;
    """,
    # 2 -> 3: end-to-end time of every enrollment (timings only: no name, image or vector; the
    # person's id is cleared when they are deleted)
    """
    CREATE TABLE enrollment_runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id     INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        model         TEXT NOT NULL,
        num_views     INTEGER NOT NULL,       -- views asked for (0: no augmentation)
        num_accepted  INTEGER NOT NULL,
        total_s       REAL NOT NULL,
        timings_json  TEXT NOT NULL,          -- seconds per stage: decode, detect, embed, generate, gate, store
        created_at    TEXT NOT NULL
    );
    CREATE INDEX enrollment_runs_created ON enrollment_runs(created_at);
    """,
    # 3 -> 4: API keys with scopes, stored as SHA-256 of the key (core/store/keys.py)
    """
    CREATE TABLE api_keys (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL,            -- who or what uses it
        scope       TEXT NOT NULL CHECK (scope IN ('admin', 'enroll', 'identify')),
        key_hash    TEXT NOT NULL UNIQUE,     -- sha256 hex of the key; the key itself is never stored
        prefix      TEXT NOT NULL,            -- its first characters, to recognise it
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    """,
    # 4 -> 5: model versions (core/store/model_versions.py). At most one model is active (the partial
    # unique index is the pointer); one embedding per (image, model); images a re-embedding could
    # not embed; the ids of removed embeddings (ids only), so search indexes refresh incrementally;
    # batch jobs with their progress. Models found in old galleries start 'retired': the service
    # activates its configured model on first start.
    """
    CREATE TABLE models (
        name           TEXT PRIMARY KEY,
        dim            INTEGER NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('building', 'active', 'retired')),
        spec_json      TEXT NOT NULL,         -- the settings that load it: {"embedder": ..., "detector": ...}
        thresholds_json TEXT NOT NULL,        -- identification threshold per matching rule (and 'gate')
        created_at     TEXT NOT NULL,
        activated_at   TEXT
    );
    CREATE UNIQUE INDEX models_one_active ON models(status) WHERE status = 'active';
    INSERT INTO models(name, dim, status, spec_json, thresholds_json, created_at)
        SELECT model, MAX(dim), 'retired', '{}', '{}', MIN(created_at) FROM embeddings GROUP BY model;
    DELETE FROM embeddings WHERE id NOT IN (SELECT MIN(id) FROM embeddings GROUP BY image_id, model);
    CREATE UNIQUE INDEX embeddings_image_model ON embeddings(image_id, model);
    CREATE TABLE reembed_skips (
        image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        model       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        PRIMARY KEY (image_id, model)
    );
    CREATE TABLE embedding_removals (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        embedding_id  INTEGER NOT NULL,
        model         TEXT NOT NULL
    );
    CREATE TRIGGER embeddings_removed AFTER DELETE ON embeddings BEGIN
        INSERT INTO embedding_removals(embedding_id, model) VALUES (old.id, old.model);
    END;
    CREATE TABLE jobs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL,           -- 'reembed'
        model        TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
        total        INTEGER NOT NULL,        -- images to embed when it started
        done         INTEGER NOT NULL,
        skipped      INTEGER NOT NULL,
        pid          INTEGER,
        host         TEXT,
        message      TEXT,
        started_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        finished_at  TEXT
    );
    """,
    # 5 -> 6: the stages of a generation call (name, seconds, GPU peak), for the latency charts.
    """
    ALTER TABLE generation_runs ADD COLUMN stages_json TEXT NOT NULL DEFAULT '[]';
    """,
    # 6 -> 7: the removal log is pruned (core/store/removals.py): each row's time (unix seconds;
    # rows from before: 0) and the highest sequence number pruned, below which a reader reloads.
    """
    ALTER TABLE embedding_removals ADD COLUMN removed_at INTEGER NOT NULL DEFAULT 0;
    DROP TRIGGER embeddings_removed;
    CREATE TRIGGER embeddings_removed AFTER DELETE ON embeddings BEGIN
        INSERT INTO embedding_removals(embedding_id, model, removed_at)
        VALUES (old.id, old.model, CAST(strftime('%s', 'now') AS INTEGER));
    END;
    CREATE TABLE store_meta (
        key    TEXT PRIMARY KEY,
        value  INTEGER NOT NULL
    );
    INSERT INTO store_meta(key, value) VALUES ('removals_floor', 0);
    """,
    # 7 -> 8: indexes for the per-person paths, which scanned whole tables: a person's embeddings
    # (detail, counts, and the cascade of a delete), their runs (the cascade and SET NULL of a
    # delete) and the images by file path (a delete checks each file is no longer referenced).
    """
    CREATE INDEX embeddings_person ON embeddings(person_id, model, source);
    CREATE INDEX generation_runs_person ON generation_runs(person_id);
    CREATE INDEX enrollment_runs_person ON enrollment_runs(person_id);
    CREATE INDEX images_path ON images(path);
    """,
    # 8 -> 9: a stamp of the gallery tables, a fresh random value on every change to a person,
    # image or embedding (a restored copy gets no stale match, unlike a counter): GET /v1/export
    # answers 304 Not Modified to a client that already holds the snapshot (ETag, If-None-Match).
    """
    INSERT INTO store_meta(key, value) VALUES ('gallery_stamp', random());
"""
    + "".join(
        f"""    CREATE TRIGGER {table}_stamp_{event.lower()} AFTER {event} ON {table} BEGIN
        UPDATE store_meta SET value = random() WHERE key = 'gallery_stamp';
    END;
"""
        for table in ("persons", "images", "embeddings")
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
    # 9 -> 10: which persons changed, in order (core/store/changes.py): every change to a person
    # or one of their images or embeddings takes the next number of a counter and records it
    # against the person (one row per person: the latest number), so a client that holds a
    # snapshot asks for the persons changed since its number and re-reads only theirs. A deleted
    # person's row goes with them (erasure leaves no row naming them): the number of the latest
    # deletion tells a client to drop the persons no longer there. The epoch is random: a
    # restored or replaced store is another sequence.
    """
    CREATE TABLE person_changes (
        person_id  INTEGER PRIMARY KEY,
        seq        INTEGER NOT NULL
    );
    CREATE INDEX person_changes_seq ON person_changes(seq);
    INSERT INTO store_meta(key, value) VALUES ('change_seq', 0);
    INSERT INTO store_meta(key, value) VALUES ('change_deleted', 0);
    INSERT INTO store_meta(key, value) VALUES ('change_epoch', random());
"""
    + _change_trigger("persons", "INSERT", _record_change("NEW.id"))
    + _change_trigger("persons", "UPDATE", _record_change("NEW.id"))
    + _change_trigger("persons", "DELETE", _FORGET_PERSON)
    + "".join(
        _change_trigger(table, "INSERT", _record_change("NEW.person_id"))
        + _change_trigger(
            table, "UPDATE", _record_change("NEW.person_id") + _record_change("OLD.person_id", if_present=True)
        )
        + _change_trigger(table, "DELETE", _record_change("OLD.person_id", if_present=True))
        for table in ("images", "embeddings")
    ),
    # 10 -> 11: what an identification threshold holds at the size of a gallery
    # (core/search/fpir.py): its per-person false match rate, and the persons it was calibrated for
    """
    ALTER TABLE thresholds ADD COLUMN person_fmr REAL;       -- share of impostor pairs at or over it
    ALTER TABLE thresholds ADD COLUMN gallery_size INTEGER;  -- persons the target FPIR holds for
    """,
    # 11 -> 12: a search for faces enrolled twice run as a background job (core/store/audits.py):
    # what it searched with, and the pairs it found. A pair names persons by id only and goes
    # with either of them (erasure leaves no row naming a deleted person); a newer audit replaces
    # the older ones' pairs.
    """
    CREATE TABLE duplicate_audits (
        job_id        INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        model         TEXT NOT NULL,
        match_mode    TEXT NOT NULL,
        threshold     REAL NOT NULL,
        views_offset  REAL NOT NULL,
        photos        INTEGER NOT NULL   -- original photos searched
    );
    CREATE TABLE duplicate_pairs (
        job_id     INTEGER NOT NULL REFERENCES duplicate_audits(job_id) ON DELETE CASCADE,
        person_id  INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        other_id   INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        score      REAL NOT NULL,
        PRIMARY KEY (job_id, person_id, other_id)
    );
    CREATE INDEX duplicate_pairs_person ON duplicate_pairs(person_id);
    CREATE INDEX duplicate_pairs_other ON duplicate_pairs(other_id);
    """,
    # 12 -> 13: how many impostor pairs a per-person false match rate was measured over, so
    # that its confidence interval (core/search/fpir.py) can be told
    """
    ALTER TABLE thresholds ADD COLUMN fmr_pairs INTEGER;
    """,
    # 13 -> 14: who did what to the gallery over HTTP (core/store/access_log.py): one row per
    # action and person; a person's id goes from every row when they are erased (SET NULL), so the
    # row of an action stays and no row names them. Never image bytes, vectors or names.
    """
    CREATE TABLE access_log (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        at         TEXT NOT NULL,
        key_id     INTEGER,            -- api_keys.id; NULL: the service's own admin key
        key_name   TEXT NOT NULL,
        action     TEXT NOT NULL,
        person_id  INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        detail     TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX access_log_person ON access_log(person_id);
    CREATE INDEX access_log_at ON access_log(at);
    CREATE INDEX access_log_action ON access_log(action, id);
    """,
    # 14 -> 15: a generated view belongs to the photo it was made from: removing the photo removes
    # its views (and, cascading, their vectors). Existing views are linked to the photo of the
    # enrollment they came from: the one photo of that person stored in the same transaction (same
    # time). Where there is none (its photo was removed before) or more than one (a person brought
    # in by an import, all at one time) the view stays unlinked: never linked to the wrong photo.
    """
    ALTER TABLE images ADD COLUMN source_image_id INTEGER REFERENCES images(id) ON DELETE CASCADE;
    UPDATE images SET source_image_id = (
        SELECT MAX(o.id) FROM images o
        WHERE o.person_id = images.person_id AND o.source = 'original' AND o.created_at = images.created_at)
    WHERE source <> 'original' AND (
        SELECT COUNT(*) FROM images o
        WHERE o.person_id = images.person_id AND o.source = 'original' AND o.created_at = images.created_at) = 1;
    CREATE INDEX images_source_image ON images(source_image_id);
    """,
    # 15 -> 16: how long each identify and verify call took, stage by stage (core/store/runs.py;
    # the console's latency charts): timings only, never who was searched for or found (no
    # person, name, image or vector). The newest SEARCH_RUNS_KEPT rows are kept.
    """
    CREATE TABLE search_runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        kind          TEXT NOT NULL CHECK (kind IN ('identify', 'verify', 'verify_person')),
        faces         INTEGER NOT NULL,   -- faces searched or compared
        total_s       REAL NOT NULL,
        timings_json  TEXT NOT NULL,      -- seconds per stage
        created_at    TEXT NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version found before."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise StoreSchemaError(
            f"the gallery has schema version {found}, newer than this code knows ({SCHEMA_VERSION}); upgrade ManyAngles"
        )
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for version in range(current, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def _statements(script: str) -> list[str]:
    # executescript() would commit our transaction: drop comments, then split on ';' where a
    # statement is complete (a trigger's body holds ';'). Our DDL has no literal holding '--'.
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    out, pending = [], ""
    for piece in code.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    return out
