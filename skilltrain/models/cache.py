"""A persistent response cache: same request + same sample index -> same reply.

The sample index is part of the key, so asking for a fresh sample of a request is a different
entry, while a resumed or replayed run gets back exactly the replies it got the first time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from skilltrain.models.base import Completion


def request_key(model: str, request: dict[str, Any], sample: int) -> str:
    blob = json.dumps({"model": model, "request": request, "sample": sample},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, "
            "request TEXT, response TEXT, created REAL DEFAULT (julianday('now')))"
        )

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        completion = Completion.from_json(json.loads(row[0]))
        completion.cached = True
        return completion

    def put(self, key: str, model: str, request: dict[str, Any], completion: Completion) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, model, request, response) VALUES (?, ?, ?, ?)",
            (key, model, json.dumps(request, ensure_ascii=False)[:20000],
             json.dumps(completion.to_json(), ensure_ascii=False)),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
