"""A date-partitioned, 12-column parquet table of the benchmark design, written by Spark.

The rows of :func:`bench.datagen.spark_frame` (``id``, W0..W4, ``d``, ``y``: ATE = 2) with
what a fact table also carries and a study does not read — ``region`` (text, 8 levels),
``sessions`` (an integer count), ``basket`` (a positive amount) — and ``event_date``, the
partition column: ``days`` consecutive days from 2026-01-01, each holding a contiguous
range of ids (a day's rows land together, as a daily load writes them). Nothing passes
through Python; the extra columns draw from their own streams of the engines' hash draw,
keyed on the row id, so the table is the same whatever the partitioning.

The table is ``<data_dir>/partitioned-<rows>-d<days>-s<seed>/event_date=.../*.parquet``
with a ``_whybatch_bench.json`` sidecar; an existing one whose sidecar matches is reused.
Before writing, :func:`check_disk` refuses a table that would not fit the disk with room to
spare for Spark's spills.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import date
from pathlib import Path

from bench.datagen import DEFAULT_DATA_DIR, SIDECAR, VERSION, Dataset, check_data_dir, spark_frame

PARTITION_COLUMN = "event_date"
FIRST_DAY = date(2026, 1, 1)
REGIONS = ("north", "south", "east", "west", "centre", "coast", "hills", "islands")
COLUMNS = ("id", PARTITION_COLUMN, "W0", "W1", "W2", "W3", "W4", "d", "y", "region", "sessions", "basket")
BYTES_PER_ROW = 48  # measured: 10M rows take 0.44 GiB of snappy parquet; the disk is checked with it
SPILL_FACTOR = 3.0  # free space wanted: the table, and twice it again for Spark's spills of cached frames


def partitioned_frame(spark, rows: int, seed: int, days: int):
    """The 12 columns as a Spark DataFrame (see the module docstring)."""
    from pyspark.sql import functions as F

    from jobs.spark.compiler import uniform

    def u(stream: int):
        return uniform(F.col("id"), seed, stream)

    day = F.floor(F.col("id") * F.lit(days) / F.lit(rows)).cast("int")
    region = F.element_at(F.array(*[F.lit(r) for r in REGIONS]), (F.floor(u(8) * len(REGIONS)) + 1).cast("int"))
    sessions = F.floor(-F.log(F.lit(1.0) - u(9)) * F.lit(3.0)).cast("int")  # geometric, mean about 2.5
    basket = F.round(F.exp(F.lit(2.0) + F.lit(1.5) * u(10)), 2)  # between 7.39 and 33.12
    return spark_frame(spark, rows, seed).select(
        "id", F.date_add(F.lit(FIRST_DAY), day).alias(PARTITION_COLUMN), "W0", "W1", "W2", "W3", "W4", "d", "y",
        region.alias("region"), sessions.alias("sessions"), basket.alias("basket"))


def check_disk(path: Path, rows: int) -> str:
    """Refuse (SystemExit) when the disk under ``path`` has less free space than the table's
    expected size times :data:`SPILL_FACTOR`; otherwise say what was checked."""
    need = rows * BYTES_PER_ROW
    free = shutil.disk_usage(path).free
    text = (f"disk: {free / 2 ** 30:.1f} GiB free under {path}; the table needs about {need / 2 ** 30:.1f} GiB "
            f"({BYTES_PER_ROW} B a row), {SPILL_FACTOR:.0f}x that is wanted free")
    if free < need * SPILL_FACTOR:
        raise SystemExit(f"not enough space: {text}")
    return text


def disk_bytes(path: Path) -> int:
    """Bytes of the table's files on disk."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def partitioned_dataset(spark, rows: int, data_dir: Path = DEFAULT_DATA_DIR, seed: int = 7, days: int = 20,
                        log=print) -> Dataset:
    """Generate (or reuse) the table as ``<data_dir>/partitioned-<rows>-d<days>-s<seed>/``."""
    data_dir = check_data_dir(data_dir)
    ds = Dataset(data_dir / f"partitioned-{rows}-d{days}-s{seed}", rows, "spark, partitioned", seed)
    meta = {"rows": rows, "seed": seed, "days": days, "columns": list(COLUMNS), "version": VERSION}
    side = ds.path / SIDECAR
    if side.exists() and {k: json.loads(side.read_text()).get(k) for k in meta} == meta:
        log(f"data: reusing {ds.describe()}, {days} partitions by {PARTITION_COLUMN}")
        return ds
    log(check_disk(data_dir, rows))
    t0 = time.perf_counter()
    shutil.rmtree(ds.path, ignore_errors=True)
    partitioned_frame(spark, rows, seed, days).write.partitionBy(PARTITION_COLUMN).parquet(str(ds.path))
    seconds = time.perf_counter() - t0
    side.write_text(json.dumps({**meta, "generated_seconds": round(seconds, 2), "bytes": disk_bytes(ds.path)},
                               indent=2))
    log(f"data: generated {ds.describe()}, {days} partitions by {PARTITION_COLUMN}, in {seconds:.1f} s")
    return ds


__all__ = ("COLUMNS", "PARTITION_COLUMN", "check_disk", "disk_bytes", "partitioned_dataset", "partitioned_frame")
