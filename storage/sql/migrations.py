"""Forward-only schema migrations, for both engines. Never edit a shipped migration: append one.

Each migration is a function of a `Migrator` and runs once, in the transaction that records
its name in `_migrations` (all pending ones in a single transaction at start-up; on PostgreSQL
behind an advisory lock, so two processes starting at once migrate one after the other).

m001..m005 are the SQLite history, as raw SQL, so existing files upgrade in place. PostgreSQL
starts at their end: `m001_initial` creates the whole schema of m005 there (frozen below, never
to follow `tables.py`), and m002..m005 only record themselves. Every later migration runs on
both and is written once with SQLAlchemy DDL (`Migrator.add_column`, `Table.create`, ...),
or, where SQLite needs its own way (a table rebuilt to change a CHECK), with a branch on
`Migrator.engine`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.schema import CreateColumn

from storage.sql import tables

# An arbitrary constant: the key of the advisory lock that migrations of this app hold.
_PG_LOCK_KEY = 0x70686F746F  # "photo"


class Migrator:
    """What a migration is given: the connection inside the open transaction, and helpers."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.engine = conn.dialect.name  # "sqlite" or "postgresql"

    def sqlite_script(self, script: str) -> None:
        """Run several SQLite statements (the SQLite-only history)."""
        for statement in _split_statements(script):
            self.conn.exec_driver_sql(statement)

    def execute(self, sql: str) -> None:
        """One statement both engines understand."""
        self.conn.execute(text(sql))

    def driver_script(self, script: str) -> None:
        """Run a whole PostgreSQL script as written: straight to psycopg, whose parameter
        syntax SQLAlchemy would otherwise look for in it (a `%` in a function body)."""
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(script)
        finally:
            cursor.close()

    def add_column(self, table: str, column: Column[object]) -> None:
        """ALTER TABLE ... ADD COLUMN, the column spelt in each engine's own DDL."""
        spec = CreateColumn(column).compile(dialect=self.conn.dialect)
        self.conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {spec}")


Migration = Callable[[Migrator], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register a migration; they run in the order they are defined, once each."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def apply_migrations(conn: Connection) -> list[str]:
    """Run the migrations this database has not seen yet, inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        # Before anything else, even the CREATE TABLE IF NOT EXISTS: two of those at once clash.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    tables.migrations.create(conn, checkfirst=True)
    done: set[str] = set(conn.execute(select(tables.migrations.c.name)).scalars())
    migrator = Migrator(conn)
    ran = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        fn(migrator)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        conn.execute(tables.migrations.insert().values(name=name, applied_at=stamp))
        ran.append(name)
    return ran


def _split_statements(script: str) -> list[str]:
    """Split a script into statements (sqlite3.complete_statement knows about quotes)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


@migration
def m001_initial(m: Migrator) -> None:
    if m.engine != "sqlite":
        _postgres_baseline().create_all(m.conn)
        return
    m.sqlite_script(
        """
        -- One row per Telegram chat: which album new media goes to.
        CREATE TABLE chats (
            chat_id INTEGER PRIMARY KEY,
            current_album_id INTEGER,
            created_at TEXT NOT NULL
        );

        CREATE TABLE albums (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX albums_by_chat ON albums (chat_id, id);

        -- A file under DATA_DIR/media, named by the sha256 of its bytes: the same photo sent
        -- twice, or to two albums, is stored once.
        CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mime_type TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        -- A burst of media (or notes) acknowledged by one message; what /undo takes back.
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            created_at TEXT NOT NULL
        );

        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            batch_id INTEGER REFERENCES batches (id) ON DELETE SET NULL,
            -- The number the traveller and the model use ("photo 7"); never reused in an album.
            position INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('photo', 'video')),
            source_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
            -- What the model gets: a small upright JPEG for photos, the file itself for videos.
            model_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
            model_mime_type TEXT NOT NULL,
            -- Telegram's ids: file_unique_id spots a repeat before downloading it again;
            -- file_id lets the bot download the original again.
            file_unique_id TEXT,
            file_id TEXT,
            file_name TEXT,
            mime_type TEXT,
            caption TEXT,
            chat_message_id INTEGER,
            media_group_id TEXT,
            sender_id INTEGER,
            sender_name TEXT,
            width INTEGER,
            height INTEGER,
            duration REAL,
            -- When and where, from EXIF or the container; message_date is the fallback.
            taken_at TEXT,
            time_source TEXT,
            latitude REAL,
            longitude REAL,
            altitude REAL,
            place TEXT,
            camera TEXT,
            message_date TEXT,
            -- Set when the model service could not process the file; it is then left out.
            model_failed TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (album_id, source_sha256),
            UNIQUE (album_id, position)
        );
        CREATE INDEX items_by_unique_id ON items (album_id, file_unique_id);
        CREATE INDEX items_by_message ON items (chat_message_id);

        -- What the traveller tells about the trip: plain text while collecting, /note.
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            batch_id INTEGER REFERENCES batches (id) ON DELETE SET NULL,
            text TEXT NOT NULL,
            sender_id INTEGER,
            sender_name TEXT,
            created_at TEXT NOT NULL
        );

        -- One question and its answer, stored together once the answer is complete, so a
        -- failed call leaves no half turn behind.
        CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            prompt TEXT NOT NULL,
            user_text TEXT,
            focus_item_id INTEGER REFERENCES items (id) ON DELETE SET NULL,
            answer_text TEXT NOT NULL,
            -- The model's turn as the SDK returned it (keeps thought signatures for re-sending).
            answer_content TEXT,
            sender_id INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE INDEX exchanges_by_album ON exchanges (album_id, id);

        -- Files uploaded to the model's File API, reused until shortly before they expire.
        CREATE TABLE uploads (
            sha256 TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            uri TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        -- Tokens per model call, per user and chat: budgets, /usage and /stats.
        CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            user_id INTEGER,
            chat_id INTEGER NOT NULL,
            album_id INTEGER,
            kind TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            thinking_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens INTEGER NOT NULL DEFAULT 0,
            by_modality TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX usage_by_user ON usage (user_id, created_at);
        CREATE INDEX usage_by_chat ON usage (chat_id, created_at);
        """
    )


@migration
def m002_item_telegram_type(m: Migrator) -> None:
    # How the file reached Telegram (photo, video, video_note, animation, document) decides how
    # the illustrated story can post it again: by file_id, or by uploading our own copy.
    if m.engine == "sqlite":  # in PostgreSQL's m001
        m.sqlite_script("ALTER TABLE items ADD COLUMN telegram_type TEXT")


@migration
def m003_inbox(m: Migrator) -> None:
    # Updates are written here as soon as they are fetched and deleted once handled: Telegram
    # forgets an update as soon as the next poll confirms it, so without this a process killed
    # between fetching and handling would lose photos that were never acknowledged.
    if m.engine == "sqlite":  # in PostgreSQL's m001
        m.sqlite_script(
            """
            CREATE TABLE inbox (
                update_id INTEGER PRIMARY KEY,
                payload TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                received_at TEXT NOT NULL
            );
            """
        )


@migration
def m004_model_copy_pending(m: Migrator) -> None:
    # A photo is acknowledged once its original is stored and checked; the model's small copy
    # is made in the background (0 = not yet: model_sha256 still names the original).
    if m.engine == "sqlite":  # in PostgreSQL's m001
        m.sqlite_script("ALTER TABLE items ADD COLUMN model_ready INTEGER NOT NULL DEFAULT 1")


@migration
def m005_item_blob_sizes(m: Migrator) -> None:
    # An item carries its two files whole (hash, size, type), so reading an album needs no join
    # with `blobs`; rows from before are filled from there.
    if m.engine != "sqlite":  # in PostgreSQL's m001
        return
    m.sqlite_script(
        """
        ALTER TABLE items ADD COLUMN source_size INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE items ADD COLUMN source_mime TEXT NOT NULL DEFAULT '';
        ALTER TABLE items ADD COLUMN model_size INTEGER NOT NULL DEFAULT 0;
        UPDATE items SET
            source_size = COALESCE((SELECT size FROM blobs WHERE sha256 = items.source_sha256), 0),
            source_mime = COALESCE(
                (SELECT mime_type FROM blobs WHERE sha256 = items.source_sha256),
                items.mime_type, ''),
            model_size = COALESCE((SELECT size FROM blobs WHERE sha256 = items.model_sha256), 0);
        """
    )


@migration
def m006_audio_items(m: Migrator) -> None:
    # Voice notes and audio files join albums as kind 'audio'. SQLite cannot change a CHECK in
    # place: the table is rebuilt with every row, id and index, as its documentation says to
    # (https://www.sqlite.org/lang_altertable.html#otheralter). Migrations run in a transaction
    # with foreign keys on, where the pragma cannot be turned off: dropping the old table then
    # sets the exchanges' focus_item_id to NULL (ON DELETE SET NULL), so those are kept aside
    # and put back once the copy, with the same ids, is in place.
    # PostgreSQL's m001 already admits 'audio'.
    if m.engine != "sqlite":
        return
    m.sqlite_script(
        """
        CREATE TEMP TABLE _focus AS
            SELECT id, focus_item_id FROM exchanges WHERE focus_item_id IS NOT NULL;
        CREATE TABLE items_new (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            batch_id INTEGER REFERENCES batches (id) ON DELETE SET NULL,
            position INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('photo', 'video', 'audio')),
            source_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
            model_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
            model_mime_type TEXT NOT NULL,
            file_unique_id TEXT,
            file_id TEXT,
            file_name TEXT,
            mime_type TEXT,
            caption TEXT,
            chat_message_id INTEGER,
            media_group_id TEXT,
            sender_id INTEGER,
            sender_name TEXT,
            width INTEGER,
            height INTEGER,
            duration REAL,
            taken_at TEXT,
            time_source TEXT,
            latitude REAL,
            longitude REAL,
            altitude REAL,
            place TEXT,
            camera TEXT,
            message_date TEXT,
            model_failed TEXT,
            created_at TEXT NOT NULL,
            telegram_type TEXT,
            model_ready INTEGER NOT NULL DEFAULT 1,
            source_size INTEGER NOT NULL DEFAULT 0,
            source_mime TEXT NOT NULL DEFAULT '',
            model_size INTEGER NOT NULL DEFAULT 0,
            UNIQUE (album_id, source_sha256),
            UNIQUE (album_id, position)
        );
        INSERT INTO items_new (
            id, album_id, batch_id, position, kind, source_sha256, model_sha256, model_mime_type,
            file_unique_id, file_id, file_name, mime_type, caption, chat_message_id,
            media_group_id, sender_id, sender_name, width, height, duration, taken_at,
            time_source, latitude, longitude, altitude, place, camera, message_date,
            model_failed, created_at, telegram_type, model_ready, source_size, source_mime,
            model_size)
        SELECT
            id, album_id, batch_id, position, kind, source_sha256, model_sha256, model_mime_type,
            file_unique_id, file_id, file_name, mime_type, caption, chat_message_id,
            media_group_id, sender_id, sender_name, width, height, duration, taken_at,
            time_source, latitude, longitude, altitude, place, camera, message_date,
            model_failed, created_at, telegram_type, model_ready, source_size, source_mime,
            model_size
        FROM items;
        DROP TABLE items;
        ALTER TABLE items_new RENAME TO items;
        CREATE INDEX items_by_unique_id ON items (album_id, file_unique_id);
        CREATE INDEX items_by_message ON items (chat_message_id);
        UPDATE exchanges SET focus_item_id =
            (SELECT f.focus_item_id FROM _focus f WHERE f.id = exchanges.id)
            WHERE id IN (SELECT id FROM _focus);
        DROP TABLE _focus;
        """
    )


@migration
def m007_context_caches(m: Migrator) -> None:
    # The album's context cached at the model service (cachedContents): follow-ups name it
    # instead of sending the album again. Kept here so a restarted bot reuses it, and deleted
    # with the album; `key` is what it holds, so a changed album is noticed.
    m.execute(
        "CREATE TABLE context_caches ("
        " album_id BIGINT PRIMARY KEY REFERENCES albums (id) ON DELETE CASCADE,"
        " name TEXT NOT NULL,"
        " key TEXT NOT NULL,"
        " expires_at TEXT NOT NULL,"
        " tokens BIGINT NOT NULL,"
        " created_at TEXT NOT NULL)"
    )


@migration
def m008_chat_leases(m: Migrator) -> None:
    # Several replicas on one database: whichever receives an update journals it with its chat,
    # and the one replica holding that chat's lease runs the chat's updates, in order.
    m.add_column("inbox", Column("chat_id", BigInteger))
    m.execute("CREATE INDEX inbox_chat ON inbox (chat_id, update_id)")
    m.execute(
        "CREATE TABLE chat_leases ("
        " chat_id BIGINT PRIMARY KEY,"
        " owner TEXT NOT NULL,"
        " expires_at DOUBLE PRECISION NOT NULL)"
    )


@migration
def m009_chat_language(m: Migrator) -> None:
    # The language a chat chose with /language (a catalog's code, "pt_BR"); NULL follows the
    # language of whoever writes.
    m.add_column("chats", Column("language", Text))


@migration
def m010_received_updates(m: Migrator) -> None:
    # Handled updates were deleted from the inbox, so a webhook resend after a lost 200 ran
    # again. Every received update_id is now recorded here and marked handled (on the database's
    # clock), kept a day (Telegram's retention) and then purged; the inbox keeps only the
    # pending ones' payloads. Updates pending at the upgrade are recorded as received.
    m.execute(
        "CREATE TABLE received_updates ("
        " update_id BIGINT PRIMARY KEY,"
        " received_at DOUBLE PRECISION NOT NULL,"
        " handled_at DOUBLE PRECISION)"
    )
    m.execute("CREATE INDEX received_updates_handled ON received_updates (handled_at)")
    now = (
        "(julianday('now') - 2440587.5) * 86400.0"
        if m.engine == "sqlite"
        else "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    )
    m.execute(
        f"INSERT INTO received_updates (update_id, received_at) SELECT update_id, {now} FROM inbox"
    )


@migration
def m011_jobs(m: Migrator) -> None:
    # The local job runner (storage.jobs.local): work that outlives a request, deferred in the
    # transaction that records why. Made on PostgreSQL too (unused there: procrastinate's tables
    # are), so both engines have one schema. Ids only grow, and are never used again once a
    # finished job's row is deleted (AUTOINCREMENT): a lock's jobs run in id order, and what a
    # job sent or asked is kept under its id (sent_messages, exchanges.job_id).
    pk = (
        "INTEGER PRIMARY KEY AUTOINCREMENT"
        if m.engine == "sqlite"
        else "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    m.execute(
        "CREATE TABLE jobs ("
        f" id {pk},"
        " task TEXT NOT NULL,"
        " args TEXT NOT NULL,"
        " lock TEXT,"
        " queueing_lock TEXT,"
        " queue TEXT NOT NULL,"
        " status TEXT NOT NULL CHECK (status IN ('todo', 'doing', 'failed')),"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " run_after DOUBLE PRECISION NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL,"
        " failed_at DOUBLE PRECISION)"
    )
    # The fetch: due jobs of a queue, and the earlier or running jobs of a lock.
    m.execute("CREATE INDEX jobs_due ON jobs (status, queue, run_after)")
    m.execute("CREATE INDEX jobs_lock ON jobs (lock, status, id) WHERE lock IS NOT NULL")
    m.execute(
        "CREATE INDEX jobs_queueing_lock ON jobs (queueing_lock, status)"
        " WHERE queueing_lock IS NOT NULL"
    )


@migration
def m012_procrastinate(m: Migrator) -> None:
    # Replicas on one PostgreSQL run their jobs on procrastinate's tables (storage/jobs/
    # postgres.py): its schema, frozen as shipped with 3.10 (an upgrade appends its own
    # migration files as ours), plus our trigger. SQLite has no use for it: the name only.
    if m.engine != "postgresql":
        return
    m.driver_script(_sql_file("procrastinate_3_10.sql"))
    # procrastinate wakes workers only when a job is inserted: when a locked job ends, the
    # next job of its lock would wait for the polling interval. Say so at once instead, on
    # both channels (a worker of given queues listens on its queues', one of all on "any"),
    # and likewise when a waiting job is brought forward.
    m.driver_script(
        """
        CREATE FUNCTION photostory_notify_job_runnable() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('procrastinate_queue_v1#' || OLD.queue_name,
                              json_build_object('type', 'job_inserted', 'job_id', OLD.id)::text);
            PERFORM pg_notify('procrastinate_any_queue_v1',
                              json_build_object('type', 'job_inserted', 'job_id', OLD.id)::text);
            RETURN NULL;
        END $$;
        CREATE TRIGGER photostory_lock_freed AFTER UPDATE OF status ON procrastinate_jobs
            FOR EACH ROW WHEN (OLD.status = 'doing' AND NEW.status <> 'doing'
                               AND OLD.lock IS NOT NULL)
            EXECUTE FUNCTION photostory_notify_job_runnable();
        CREATE TRIGGER photostory_lock_freed_on_delete AFTER DELETE ON procrastinate_jobs
            FOR EACH ROW WHEN (OLD.status = 'doing' AND OLD.lock IS NOT NULL)
            EXECUTE FUNCTION photostory_notify_job_runnable();
        CREATE TRIGGER photostory_brought_forward AFTER UPDATE OF scheduled_at
            ON procrastinate_jobs
            FOR EACH ROW WHEN (NEW.status = 'todo' AND OLD.scheduled_at IS NOT NULL
                               AND (NEW.scheduled_at IS NULL
                                    OR NEW.scheduled_at < OLD.scheduled_at))
            EXECUTE FUNCTION photostory_notify_job_runnable();
        """
    )


@migration
def m013_sent_messages(m: Migrator) -> None:
    # Effects once: a job run again (a crash, a stall taken over, a retry) must not post its
    # messages twice nor ask the model again. Each message a job sends is recorded here with
    # Telegram's answer, and each exchange with the job that asked for it.
    m.execute(
        "CREATE TABLE sent_messages ("
        " job_id BIGINT NOT NULL,"
        " key TEXT NOT NULL,"
        " attempt INTEGER NOT NULL,"
        " result TEXT,"
        " created_at DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (job_id, key))"
    )
    m.execute("CREATE INDEX sent_messages_created ON sent_messages (created_at)")
    m.add_column("exchanges", Column("job_id", BigInteger))
    m.execute("CREATE INDEX exchanges_job ON exchanges (job_id)")


@migration
def m014_bursts(m: Migrator) -> None:
    # Bursts and first-time hints were in the memory of the process running the chat, which
    # pinned a chat to it; as rows any replica can carry on a burst another one began.
    key = (
        "INTEGER PRIMARY KEY"  # SQLite's rowid
        if m.engine == "sqlite"
        else "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    m.execute(
        "CREATE TABLE bursts ("
        f" id {key},"
        " chat_id BIGINT NOT NULL,"
        " album_id BIGINT NOT NULL,"
        " batch_id BIGINT,"
        " photos INTEGER NOT NULL DEFAULT 0,"
        " videos INTEGER NOT NULL DEFAULT 0,"
        " voice_notes INTEGER NOT NULL DEFAULT 0,"
        " notes INTEGER NOT NULL DEFAULT 0,"
        " repeats INTEGER NOT NULL DEFAULT 0,"
        " failures TEXT NOT NULL DEFAULT '[]',"
        " message_id BIGINT,"
        " version INTEGER NOT NULL DEFAULT 0,"
        " shown INTEGER NOT NULL DEFAULT 0,"
        " language TEXT,"
        " started DOUBLE PRECISION NOT NULL,"
        " last DOUBLE PRECISION NOT NULL,"
        " quiet_until DOUBLE PRECISION,"
        " pending_since DOUBLE PRECISION,"
        " ended INTEGER NOT NULL DEFAULT 0)"
    )
    # One burst under way per chat.
    m.execute("CREATE UNIQUE INDEX bursts_current ON bursts (chat_id) WHERE ended = 0")
    m.execute("CREATE INDEX bursts_by_chat ON bursts (chat_id, id)")
    m.execute(
        "CREATE TABLE hints ("
        " chat_id BIGINT NOT NULL,"
        " topic TEXT NOT NULL,"
        " told_at DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (chat_id, topic))"
    )


@migration
def m015_arrivals(m: Migrator) -> None:
    # Received means kept: a media file is numbered and counted when its update is handled, and
    # downloaded by a job on any worker. The updates and the chats' order are the job queue's
    # now (storage/jobs), so the inbox of payloads and the replicas' chat leases go.
    # SQLite numbers rows itself only for a column declared exactly INTEGER PRIMARY KEY.
    key = (
        "id INTEGER PRIMARY KEY"
        if m.engine == "sqlite"
        else "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    m.execute(
        f"CREATE TABLE arrivals ({key},"
        " album_id BIGINT NOT NULL REFERENCES albums (id) ON DELETE CASCADE,"
        " batch_id BIGINT REFERENCES batches (id) ON DELETE SET NULL,"
        " position INTEGER NOT NULL,"
        " kind TEXT NOT NULL,"
        " origin TEXT NOT NULL,"
        " file_unique_id TEXT,"
        " chat_message_id BIGINT,"
        " file_size BIGINT,"
        " created_at TEXT NOT NULL)"
    )
    m.execute("CREATE INDEX arrivals_file ON arrivals (album_id, file_unique_id)")
    m.execute("CREATE UNIQUE INDEX arrivals_position ON arrivals (album_id, position)")
    # Updates a stopped process had journaled and not handled become jobs, in their order.
    now = (
        "(julianday('now') - 2440587.5) * 86400.0"
        if m.engine == "sqlite"
        else "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    )
    if m.engine == "postgresql":
        m.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args)"
            " SELECT 'chat', 'update',"
            " CASE WHEN chat_id IS NULL THEN NULL ELSE 'chat:' || chat_id END,"
            " jsonb_build_object('update', payload::jsonb) FROM inbox ORDER BY update_id"
        )
    else:
        m.execute(
            "INSERT INTO jobs (task, args, lock, queue, status, attempts, run_after, created_at)"
            " SELECT 'update', '{\"update\": ' || payload || '}',"
            " CASE WHEN chat_id IS NULL THEN NULL ELSE 'chat:' || chat_id END,"
            f" 'chat', 'todo', 0, {now}, {now} FROM inbox ORDER BY update_id"
        )
    m.execute("DROP TABLE chat_leases")
    m.execute("DROP TABLE inbox")


@migration
def m016_fetch_in_order(m: Migrator) -> None:
    # procrastinate's fetch takes the first runnable job in (priority, id) order. Planned with
    # the statistics of a quiet moment (a few rows), it read every waiting job, sorted them and
    # took one: under a burst of 500 updates each fetch took 2-13 ms where walking the
    # priority index takes 0.2 ms, and a worker fetches one job at a time. No sort, then: the
    # index gives the order whatever the statistics say. (A later procrastinate migration
    # that replaces the function drops this setting with it: set it again after.)
    if m.engine != "postgresql":
        return
    m.execute(
        "ALTER FUNCTION procrastinate_fetch_job_v2(character varying[], bigint)"
        " SET enable_sort = off"
    )


@migration
def m017_taken_over(m: Migrator) -> None:
    # A job's end and its endings are one statement (storage/jobs/postgres.py, `_end_with`):
    # when the job's row is no longer the attempt's, this raises, and the statement's
    # endings are undone with it. (SQLSTATE PH001: `TAKEN_OVER_STATE` there.)
    if m.engine != "postgresql":
        return
    m.driver_script(
        "CREATE FUNCTION photostory_taken_over(job_id bigint) RETURNS boolean"
        " LANGUAGE plpgsql AS $$ BEGIN"
        " RAISE EXCEPTION 'job % was taken over', job_id USING ERRCODE = 'PH001';"
        " END $$"
    )


@migration
def m018_turns(m: Migrator) -> None:
    # A lock's turn in the queue (storage/jobs, `Job.keep_turn`): kept while the lock's jobs
    # come less than their keep_turn apart (until `until`, the database's clock), a new one
    # after that. The local runner orders its jobs by `jobs.turn`; on PostgreSQL the turn is
    # the procrastinate job's priority and new turns come from a sequence. Rows past their
    # `until` serve no more; they are purged now and then.
    m.execute(
        "CREATE TABLE job_turns (lock TEXT PRIMARY KEY, turn BIGINT NOT NULL,"
        " until DOUBLE PRECISION NOT NULL)"
    )
    m.execute("ALTER TABLE jobs ADD COLUMN turn BIGINT NOT NULL DEFAULT 0")  # 0: no turn
    if m.engine == "postgresql":
        m.execute("CREATE SEQUENCE job_turn_seq")


@migration
def m019_job_results(m: Migrator) -> None:
    # What a job did, written with the change itself (storage/sql/result_store.py): a job run
    # again after a crash or a stall reads it back instead of doing it again (/undo).
    m.execute(
        "CREATE TABLE job_results (job_id BIGINT NOT NULL, name TEXT NOT NULL,"
        " value TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (job_id, name))"
    )


def _sql_file(name: str) -> str:
    """A SQL script shipped beside this module (storage/sql/NAME)."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def _postgres_baseline() -> MetaData:
    """The schema m001..m005 leave, as PostgreSQL's first migration creates it. Frozen: a later
    change is a new migration, not an edit here. (The kind check already admits 'audio', as the
    voice-notes migration will on SQLite.)"""
    md = MetaData()

    def pk() -> Column[int]:
        return Column("id", BigInteger, Identity(), primary_key=True)

    def album() -> Column[int]:
        return Column(
            "album_id", BigInteger, ForeignKey("albums.id", ondelete="CASCADE"), nullable=False
        )

    def batch() -> Column[int]:
        return Column("batch_id", BigInteger, ForeignKey("batches.id", ondelete="SET NULL"))

    def zero(name: str) -> Column[int]:
        return Column(name, Integer, nullable=False, server_default="0")

    Table(
        "chats",
        md,
        Column("chat_id", BigInteger, primary_key=True, autoincrement=False),
        Column("current_album_id", BigInteger),
        Column("created_at", Text, nullable=False),
    )
    Table(
        "albums",
        md,
        pk(),
        Column("chat_id", BigInteger, nullable=False),
        Column("name", Text, nullable=False),
        Column("created_at", Text, nullable=False),
        Column("updated_at", Text, nullable=False),
        Index("albums_by_chat", "chat_id", "id"),
    )
    Table(
        "blobs",
        md,
        Column("sha256", Text, primary_key=True),
        Column("size", BigInteger, nullable=False),
        Column("mime_type", Text, nullable=False),
        Column("created_at", Text, nullable=False),
    )
    Table("batches", md, pk(), album(), Column("created_at", Text, nullable=False))
    Table(
        "items",
        md,
        pk(),
        album(),
        batch(),
        Column("position", Integer, nullable=False),
        Column("kind", Text, nullable=False),
        Column("source_sha256", Text, ForeignKey("blobs.sha256"), nullable=False),
        Column("model_sha256", Text, ForeignKey("blobs.sha256"), nullable=False),
        Column("model_mime_type", Text, nullable=False),
        Column("file_unique_id", Text),
        Column("file_id", Text),
        Column("file_name", Text),
        Column("mime_type", Text),
        Column("caption", Text),
        Column("chat_message_id", BigInteger),
        Column("media_group_id", Text),
        Column("sender_id", BigInteger),
        Column("sender_name", Text),
        Column("width", Integer),
        Column("height", Integer),
        Column("duration", Double),
        Column("taken_at", Text),
        Column("time_source", Text),
        Column("latitude", Double),
        Column("longitude", Double),
        Column("altitude", Double),
        Column("place", Text),
        Column("camera", Text),
        Column("message_date", Text),
        Column("model_failed", Text),
        Column("created_at", Text, nullable=False),
        Column("telegram_type", Text),
        Column("model_ready", Integer, nullable=False, server_default="1"),
        Column("source_size", BigInteger, nullable=False, server_default="0"),
        Column("source_mime", Text, nullable=False, server_default=""),
        Column("model_size", BigInteger, nullable=False, server_default="0"),
        CheckConstraint("kind IN ('photo', 'video', 'audio')", name="items_kind"),
        UniqueConstraint("album_id", "source_sha256"),
        UniqueConstraint("album_id", "position"),
        Index("items_by_unique_id", "album_id", "file_unique_id"),
        Index("items_by_message", "chat_message_id"),
        # PostgreSQL does not index the referring side of a foreign key by itself.
        Index("items_by_batch", "batch_id"),
        Index("items_by_source", "source_sha256"),
        Index("items_by_model", "model_sha256"),
    )
    Table(
        "notes",
        md,
        pk(),
        album(),
        batch(),
        Column("text", Text, nullable=False),
        Column("sender_id", BigInteger),
        Column("sender_name", Text),
        Column("created_at", Text, nullable=False),
        Index("notes_by_album", "album_id", "id"),
    )
    Table(
        "exchanges",
        md,
        pk(),
        album(),
        Column("kind", Text, nullable=False),
        Column("prompt", Text, nullable=False),
        Column("user_text", Text),
        Column("focus_item_id", BigInteger, ForeignKey("items.id", ondelete="SET NULL")),
        Column("answer_text", Text, nullable=False),
        Column("answer_content", Text),
        Column("sender_id", BigInteger),
        Column("created_at", Text, nullable=False),
        Index("exchanges_by_album", "album_id", "id"),
    )
    Table(
        "uploads",
        md,
        Column("sha256", Text, primary_key=True),
        Column("name", Text, nullable=False),
        Column("uri", Text, nullable=False),
        Column("mime_type", Text, nullable=False),
        Column("expires_at", Text, nullable=False),
        Column("created_at", Text, nullable=False),
    )
    Table(
        "usage",
        md,
        pk(),
        Column("user_id", BigInteger),
        Column("chat_id", BigInteger, nullable=False),
        Column("album_id", BigInteger),
        Column("kind", Text, nullable=False),
        Column("model", Text, nullable=False),
        zero("prompt_tokens"),
        zero("output_tokens"),
        zero("thinking_tokens"),
        zero("cached_tokens"),
        zero("total_tokens"),
        Column("by_modality", Text),
        Column("created_at", Text, nullable=False),
        Index("usage_by_user", "user_id", "created_at"),
        Index("usage_by_chat", "chat_id", "created_at"),
    )
    Table(
        "inbox",
        md,
        Column("update_id", BigInteger, primary_key=True, autoincrement=False),
        Column("payload", Text, nullable=False),
        zero("attempts"),
        Column("received_at", Text, nullable=False),
    )
    return md
