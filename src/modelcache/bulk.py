"""Bulk import: question/answer pairs from a JSONL or TSV file into one tenant.

Formats (UTF-8, one record a line ending in LF or CRLF, blank lines skipped):

- JSONL: `{"question": "...", "answer": "..."}`, or chat style
  `{"query": [{"role": "user", "content": "..."}], "answer": "..."}` (`query` may also be a
  bare string), with the same message rules as the HTTP `insert`.
- TSV: `question<TAB>answer`, exactly two fields, no quoting or escapes (use JSONL for answers
  with tabs or newlines); a first line `question<TAB>answer` is taken as a header.

The whole file is validated first: if any line is bad, the import stops before anything is
written and the error lists the bad lines by number. Valid files are then inserted through
`Cache.insert` in batches; each batch is all-or-nothing, so a backend failure part-way leaves
the earlier batches stored and says how far it got.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from modelcache.cache import Cache
from modelcache.errors import InvalidRequest, ModelCacheError
from modelcache.schemas import parse_conversation
from modelcache.tenants import validate_tenant

__all__ = [
    "ImportInterrupted",
    "ImportReport",
    "Record",
    "detect_format",
    "import_file",
    "read_records",
    "validate_file",
]

Format = Literal["jsonl", "tsv"]

#: At most this many bad lines are listed in the error.
MAX_REPORTED_ERRORS = 20

_EXTENSIONS: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".tsv": "tsv"}


@dataclass(frozen=True)
class Record:
    """One valid line: the conversation as the library takes it, and its answer."""

    line: int
    query: Any
    answer: str


class ImportInterrupted(ModelCacheError):
    """A batch failed after validation; the batches before it are stored."""

    def __init__(self, cause: ModelCacheError, first_line: int, last_line: int, stored: int):
        super().__init__(
            f"{cause.message} (stopped at lines {first_line}-{last_line}; "
            f"the {stored:,} rows before them are stored)",
            code=cause.code,
            http_status=cause.http_status,
        )
        self.stored = stored


@dataclass(frozen=True)
class ImportReport:
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def detect_format(path: Path, given: str | None = None) -> Format:
    """The format named, or the one the file's extension says."""
    if given in ("jsonl", "tsv"):
        return given  # type: ignore[return-value]
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise InvalidRequest(
            f"cannot tell the format of {path.name}: name it .jsonl or .tsv, or pass --format", code=301
        )
    return found


def _from_json(text: str) -> tuple[Any, Any]:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg}") from None
    if not isinstance(item, dict):
        raise ValueError("must be a JSON object")
    if "query" in item:
        query = item["query"]
    elif "question" in item:
        if not isinstance(item["question"], str):
            raise ValueError("question must be a string")
        query = item["question"]
    else:
        raise ValueError('needs "question" (or chat-style "query") and "answer"')
    if "answer" not in item:
        raise ValueError('needs an "answer"')
    return query, item["answer"]


def _from_tsv(text: str) -> tuple[Any, Any]:
    fields = text.split("\t")
    if len(fields) != 2:
        raise ValueError(f"expected 2 tab-separated fields (question, answer), found {len(fields)}")
    return fields[0], fields[1]


def _record(number: int, query: Any, answer: Any) -> Record:
    try:
        parse_conversation(query, code=301)
    except InvalidRequest as exc:
        raise ValueError(exc.message) from None
    if not isinstance(answer, str):
        raise ValueError("answer must be a string")
    if "\x00" in answer:
        raise ValueError("answer must not contain the NUL character (\\u0000)")
    return Record(number, query, answer)


def _lines(handle: TextIO, fmt: Format) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(handle, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        if number == 1 and fmt == "tsv" and text.strip().lower() == "question\tanswer":
            continue
        yield number, text


def read_records(path: Path, fmt: Format) -> Iterator[Record | tuple[int, str]]:
    """Each line as a Record, or (line number, what is wrong with it)."""
    parse: Callable[[str], tuple[Any, Any]] = _from_json if fmt == "jsonl" else _from_tsv
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as handle:
            for number, text in _lines(handle, fmt):
                try:
                    yield _record(number, *parse(text))
                except ValueError as exc:
                    yield number, str(exc)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{path}: not UTF-8 text ({exc.reason})", code=301) from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}", code=301) from None


def validate_file(path: Path, fmt: Format) -> int:
    """Count the records; raise InvalidRequest listing the bad lines if there are any."""
    count, bad = 0, 0
    errors: list[str] = []
    for item in read_records(path, fmt):
        if isinstance(item, Record):
            count += 1
            continue
        bad += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(f"  line {item[0]}: {item[1]}")
    if bad:
        more = f"\n  ... and {bad - len(errors)} more" if bad > len(errors) else ""
        raise InvalidRequest(
            f"{path}: {bad} bad line(s), nothing imported:\n" + "\n".join(errors) + more, code=301
        )
    if not count:
        raise InvalidRequest(f"{path}: no records to import", code=301)
    return count


class Progress:
    """A plain-text progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, every_s: float = 2.0):
        self.total, self.stream, self.every_s = total, stream, every_s
        self.started = time.perf_counter()
        self._shown_at = 0.0
        self._tty = stream.isatty()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if not self._tty and done < self.total and now - self._shown_at < self.every_s:
            return
        self._shown_at = now
        elapsed = max(now - self.started, 1e-9)
        width = 30
        filled = width * done // max(self.total, 1)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,} rows "
            f"({100 * done / max(self.total, 1):.0f}%), {done / elapsed:,.0f} rows/s"
        )
        self.stream.write(("\r" + line) if self._tty else (line + "\n"))
        if self._tty and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _batches(path: Path, fmt: Format, size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for item in read_records(path, fmt):
        if not isinstance(item, Record):  # the file changed since it was validated
            raise InvalidRequest(f"{path}: line {item[0]}: {item[1]}", code=301)
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_file(
    cache: Cache,
    path: Path,
    tenant: str,
    *,
    fmt: Format,
    batch: int = 256,
    progress: bool = True,
    validated: int | None = None,
) -> ImportReport:
    """Validate the whole file, then insert it in batches; returns how many rows and how fast.

    `validated` is the record count from an earlier `validate_file` of the same file, which
    saves reading it twice.
    """
    if batch < 1:
        raise InvalidRequest("batch must be at least 1", code=301)
    validate_tenant(tenant)
    total = validated if validated is not None else validate_file(path, fmt)
    bar = Progress(total) if progress else None
    done, started = 0, time.perf_counter()
    for records in _batches(path, fmt, batch):
        try:
            cache.insert(tenant, [(r.query, r.answer) for r in records])
        except ModelCacheError as exc:
            raise ImportInterrupted(exc, records[0].line, records[-1].line, done) from exc
        done += len(records)
        if bar:
            bar.update(done)
    # An index that moved to an approximate layout is rebuilt in the background; closing
    # would abandon that work and leave it to the next start-up, so it finishes here.
    if bar:
        print("waiting for the vector index to settle ...", file=bar.stream, flush=True)
    cache.wait_for_index()
    return ImportReport(done, time.perf_counter() - started)
