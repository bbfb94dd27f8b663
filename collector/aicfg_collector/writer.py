"""Output layout, parquet writing and per-point checkpoints.

    OUT/data/<system>/<op family>/<backend>/<version>/<table>.parquet   what aicfg reads
    OUT/data/<system>/<op family>/<backend>/<version>/collection_meta.yaml
    OUT/data/<system>/comm/nccl/<nccl version>/nccl_perf.parquet
    OUT/<system>.yaml                 system description skeleton (complete it; --systems-path OUT)
    OUT/environment.json              GPU, driver, CUDA, torch, framework versions of each run
    OUT/.progress/.../<table>.jsonl   one line per measured point (resumption; not installed)

A point is appended (and flushed to disk) to the table's progress file as soon as it is
measured, so an interrupted run loses at most the point in flight; `--resume` reads the progress
files back and measures only what is missing. The parquet file is (re)written from the progress
file whenever a table finishes or the run is interrupted, in grid order, through a temporary
file and a rename, so a reader never sees a half-written table.
"""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from . import schema

SCHEMA_VERSION = 1


def table_dir(out, system, table, backend, version):
    return os.path.join(out, "data", system, schema.family(table), backend, version)


def write_table(path, table, rows):
    """Write `rows` (dicts with every column of `table`) as parquet, in the given order."""
    sch = schema.arrow_schema(table)
    cols = {f.name: [r[f.name] for r in rows] for f in sch}
    t = pa.table(cols, schema=sch)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    pq.write_table(t, tmp, compression="zstd")
    os.replace(tmp, path)


def read_table(path):
    """Rows of a parquet table as dicts (for checks and tests)."""
    return pq.read_table(path).to_pylist()


def write_meta(directory, framework, version, statuses, extra=None):
    """collection_meta.yaml beside the tables: runtime and per-table status, merged with what an
    earlier run of the same directory recorded."""
    path = os.path.join(directory, "collection_meta.yaml")
    tables = {}
    if os.path.exists(path):
        with open(path) as f:
            old = yaml.safe_load(f) or {}
        tables.update(old.get("tables") or {})
    for name, st in statuses.items():
        tables[name] = {"status": st}
    doc = {
        "schema_version": SCHEMA_VERSION,
        "provenance": "collected",
        "runtime": {"framework": framework, "version": version},
        "tables": dict(sorted(tables.items())),
    }
    if extra:
        doc["collector"] = extra
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# Written by aicfg-collector.\n")
        yaml.safe_dump(doc, f, sort_keys=False)
    os.replace(tmp, path)


class TableStore:
    """Checkpointed rows of one table in one version directory."""

    def __init__(self, out, system, table, backend, version):
        self.table = table
        self.dir = table_dir(out, system, table, backend, version)
        rel = os.path.relpath(self.dir, os.path.join(out, "data"))
        self.progress = os.path.join(out, ".progress", rel, table + ".jsonl")
        self.parquet = os.path.join(self.dir, table + ".parquet")
        self.rows = {}  # point key -> row
        self.skipped = {}  # point key -> reason (unsupported / out of memory)
        self._f = None

    def load(self):
        """Read the progress file back; a torn last line (killed mid-write) is dropped."""
        self.rows.clear()
        self.skipped.clear()
        if not os.path.exists(self.progress):
            return 0
        good = 0
        with open(self.progress, "rb") as f:
            data = f.read()
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                break
            good += len(line) + 1
            # The latest record of a point wins (a retried skip, a re-measured point).
            if "skip" in rec:
                k = tuple(rec["key"])
                self.skipped[k] = rec["skip"]
                self.rows.pop(k, None)
            else:
                k = schema.point_key(self.table, rec)
                self.rows[k] = rec
                self.skipped.pop(k, None)
        if good < len(data):  # cut the torn tail so later appends start on a fresh line
            with open(self.progress, "r+b") as f:
                f.truncate(good)
        return len(self.rows) + len(self.skipped)

    def exists(self):
        return os.path.exists(self.progress)

    def done(self, point):
        k = schema.point_key(self.table, point)
        return k in self.rows or k in self.skipped

    def _append(self, rec):
        if self._f is None:
            os.makedirs(os.path.dirname(self.progress), exist_ok=True)
            self._f = open(self.progress, "a")
        self._f.write(json.dumps(rec, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def add(self, row):
        missing = [c for c in schema.column_names(self.table) if c not in row]
        if missing:
            raise ValueError(f"{self.table}: row lacks {missing}")
        if not (row["latency"] > 0 and row["latency"] < float("inf")):
            raise ValueError(f"{self.table}: latency must be positive and finite, got {row['latency']}")
        k = schema.point_key(self.table, row)
        self.rows[k] = row
        self.skipped.pop(k, None)
        self._append(row)

    def skip(self, point, reason):
        k = schema.point_key(self.table, point)
        self.skipped[k] = reason
        self._append({"key": list(k), "skip": reason})

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def write(self, order):
        """Write the parquet file with the measured rows in `order` (the grid's points)."""
        rows = []
        seen = set()
        for p in order:
            k = schema.point_key(self.table, p)
            if k in self.rows and k not in seen:
                seen.add(k)
                rows.append(self.rows[k])
        # Points measured by an earlier run with another grid keep their place at the end.
        rows += [r for k, r in sorted(self.rows.items(), key=lambda kv: repr(kv[0]))
                 if k not in seen]
        if rows:
            write_table(self.parquet, self.table, rows)
        return len(rows)
