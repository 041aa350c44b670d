"""Relevance judgments a person gave: (query, document id) -> grade, kept durably next to the index.

They live in ``DIR/judgments.sqlite`` at the index folder's root, outside generations and segments, so that
re-indexing, ``optimize``, ``remove``, garbage collection and server restarts never touch them; a judgment is
about a query and an id, so a document removed from the index keeps its judgments (and an id not in the index
may be judged: an imported BEIR folder names documents that were removed since).

Durability: SQLite in WAL mode with ``synchronous=FULL``: a judgment is on disk (the WAL fsynced) before
``judge`` returns, so a crash after the acknowledgement loses nothing. Several processes (a server and the
CLI) may write at once: each write is one short ``BEGIN IMMEDIATE`` transaction, and a writer waits for
another (``busy_timeout``) instead of failing or losing either write.

Queries are normalised only by stripping surrounding whitespace: ``" cats "`` and ``"cats"`` are one query,
``"Cats"`` another. Reading never creates the file, and works on a read-only index folder; judging there is
refused with one line.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retriever.errors import RetrieverError
from retriever.index.files import fsync_dir
from retriever.index.layout import JUDGMENTS
from retriever.validation import document_id, shown, unicode_problem

FILE = JUDGMENTS[0]  # with its WAL companions, among the index layout's own entries
GRADES = {0: "not relevant", 1: "relevant", 2: "highly relevant"}
FORMAT = 1  # PRAGMA user_version of the file
BUSY_TIMEOUT_MS = 30_000  # how long a write waits for another process's write
SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    query TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    grade INTEGER NOT NULL CHECK (grade IN (0, 1, 2)),
    judged_at REAL NOT NULL,
    PRIMARY KEY (query, doc_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0);
"""


@dataclass(frozen=True)
class Judgment:
    """How relevant document ``doc_id`` is to ``query``: 0 not relevant, 1 relevant, 2 highly relevant."""

    query: str
    doc_id: str
    grade: int
    judged_at: float  # unix time of the latest grade

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JudgmentStore:
    """The judgments of one index folder (``index_dir/judgments.sqlite``)."""

    def __init__(self, index_dir: str | Path) -> None:
        self.root = Path(index_dir)
        self.path = self.root / FILE

    # writing ---------------------------------------------------------------------------------------
    def judge(self, query: str, doc_id: str, grade: int) -> Judgment:
        """Record a grade; the latest grade of a (query, document) pair replaces the earlier one."""
        judgment = Judgment(query_text(query), document_id(doc_id), judged_grade(grade), time.time())
        with self._writing() as db:
            db.execute("INSERT INTO judgments VALUES (?, ?, ?, ?) ON CONFLICT (query, doc_id) DO UPDATE SET "
                       "grade = excluded.grade, judged_at = excluded.judged_at",
                       (judgment.query, judgment.doc_id, judgment.grade, judgment.judged_at))
        return judgment

    def judge_many(self, judgments: list[tuple[str, str, int]]) -> int:
        """Record several grades in one transaction (all or none); returns how many."""
        now = time.time()
        rows = [(query_text(q), document_id(d), judged_grade(g), now) for q, d, g in judgments]
        if not rows:
            return 0
        with self._writing() as db:
            db.executemany("INSERT INTO judgments VALUES (?, ?, ?, ?) ON CONFLICT (query, doc_id) DO UPDATE SET "
                           "grade = excluded.grade, judged_at = excluded.judged_at", rows)
        return len(rows)

    def forget(self, query: str, doc_id: str) -> bool:
        """Remove the judgment of this pair; False if there was none."""
        query, doc_id = query_text(query), document_id(doc_id)
        if not self.path.exists():
            return False
        with self._writing() as db:
            return db.execute("DELETE FROM judgments WHERE query = ? AND doc_id = ?", (query, doc_id)).rowcount > 0

    # reading ---------------------------------------------------------------------------------------
    def all(self, query: str | None = None) -> list[Judgment]:
        """Every judgment (or those of one query), oldest first."""
        sql, params = "SELECT query, doc_id, grade, judged_at FROM judgments", ()
        if query is not None:
            sql, params = sql + " WHERE query = ?", (query_text(query),)
        rows = self._read(sql + " ORDER BY judged_at, query, doc_id", params)
        return [Judgment(q, d, int(g), float(t)) for q, d, g, t in rows]

    def qrels(self) -> dict[str, dict[str, int]]:
        """Query text -> document id -> grade, as the evaluation and training code read relevance."""
        out: dict[str, dict[str, int]] = {}
        for judgment in self.all():
            out.setdefault(judgment.query, {})[judgment.doc_id] = judgment.grade
        return out

    def count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM judgments")[0][0]) if self.path.exists() else 0

    def revision(self) -> int:
        """A number that changes with every write (judge, forget, import): what a cache of scores keys on."""
        rows = self._read("SELECT value FROM meta WHERE key = 'revision'")
        return int(rows[0][0]) if rows else 0

    # SQLite ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and fsynced) when the block ends, or nothing if it fails."""
        if not self.root.is_dir():
            raise RetrieverError(f"no index at {self.root}; judgments are kept in an index folder")
        created = not self.path.exists()
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._cannot_write(exc) from None
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if _write_ahead_log(db).lower() != "wal":
                raise RetrieverError(f"cannot keep judgments in {self.path}: its file system does not allow "
                                     "SQLite's write-ahead log")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    db.execute(statement)
            self._check_format(db)
            yield db
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise self._cannot_write(exc) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()
        if created:
            fsync_dir(self.root)  # the new file's name is durable too, not only its content

    def _check_format(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.execute(f"PRAGMA user_version = {FORMAT}")
        elif version > FORMAT:
            raise RetrieverError(f"{self.path} was written by a newer retriever (format {version}); upgrade it")

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a query, or none if nothing was ever judged; a read-only folder is read as it is."""
        if not self.path.exists():
            return []
        try:
            db = self._open_for_reading()
        except sqlite3.Error as exc:
            raise RetrieverError(f"cannot read judgments from {self.path}: {exc}") from None
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return []  # created by a writer that was killed before its first commit
            raise RetrieverError(f"cannot read judgments from {self.path}: {exc}") from None
        finally:
            db.close()

    def _open_for_reading(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError:
            db.close()
            # a WAL database on a read-only folder or mount, its -shm not there to open: nobody can be writing
            # it, so it is read as immutable
            return sqlite3.connect(f"{uri}?immutable=1", uri=True)

    def _cannot_write(self, exc: sqlite3.Error) -> RetrieverError:
        message = str(exc)
        if "readonly" in message.replace("-", "").replace(" ", "") or "unable to open" in message:
            return RetrieverError(f"cannot store judgments: index {self.root} is read-only ({message})")
        return RetrieverError(f"cannot store judgments in {self.path}: {message}")


# checks ----------------------------------------------------------------------------------------------
def query_text(value: Any) -> str:
    """A judged query as stored: the text with surrounding whitespace stripped, never blank."""
    if not isinstance(value, str):
        raise RetrieverError(f"a judged query must be a string, not {shown(value)}")
    text = value.strip()
    if not text:
        raise RetrieverError("a judged query is empty or only whitespace")
    problem = unicode_problem(text)
    if problem:
        raise RetrieverError(f"a judged query is {problem}")
    return text


def judged_grade(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in GRADES:
        raise RetrieverError(f"a grade is 0 (not relevant), 1 (relevant) or 2 (highly relevant), not {shown(value)}")
    return int(value)


def _write_ahead_log(db: sqlite3.Connection) -> str:
    """Switch to the write-ahead log (a no-op once the file is in WAL mode) and return the journal mode.

    Two processes creating the file at once can both hold a read lock while each asks for the exclusive one
    the switch needs; SQLite then answers "database is locked" at once, without waiting (it would deadlock),
    so the switch is retried for up to the busy timeout (seen once in the two-process test on a loaded CPU).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
