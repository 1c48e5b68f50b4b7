"""The demo exposure table of an A/B/C test: one row per user per day, three arms.

Users are randomized to ``control``, ``fast_pay`` or ``one_click`` (a third each); each day
a user has sessions, may purchase (``purchased`` 0/1) and spends ``revenue``. Pre-period
revenue (``pre_revenue``) drives all three, so it is a precision covariate (CUPED). Two
segment columns, ``browser`` (4 levels) and ``country`` (25 levels, a long tail), have no
effect on anything. Draws are keyed on the user (unit-level) or the row id (daily), as in
:mod:`jobs.warehouse.demo`, so the table does not depend on the partitioning.

Planted sample-ratio mismatch: a logging bug loses one_click users on edge. The share lost
is chosen so that the segment's chi-square statistic is about :data:`SRM_CHI2` at any
table size (an SRM of about 6 standard deviations, Fabijan et al. 2019), which leaves
the overall split within chance (its statistic is the segment's times its 8% share).
Browser has no effect on the outcomes, so the loss changes no lift.

Truths are the finite-population effects of the users kept, from every user's potential
outcomes under every arm (the same draws, coupled), for the metrics of
``conf/studies/checkout_readout.yaml``: revenue per user, conversion (purchased on any
day), revenue per session (a ratio of totals) and the 90th percentile of revenue per user.
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.spark.collect import collect_small

STUDY = "checkout_readout"
ARMS = ("control", "fast_pay", "one_click")
CONVERSION_LOGIT = {"control": 0.0, "fast_pay": 0.10, "one_click": 0.25}
BASKET = {"control": 1.0, "fast_pay": 1.0, "one_click": 0.97}
SESSIONS = {"control": 1.0, "fast_pay": 1.0, "one_click": 1.08}
BROWSERS = (("chrome", 0.55), ("safari", 0.25), ("firefox", 0.12), ("edge", 0.08))
COUNTRIES = ("us", "gb", "de", "fr", "es", "it", "nl", "se", "pl", "br", "mx", "ca", "au", "jp", "in", "kr", "tr",
             "ch", "at", "be", "dk", "no", "fi", "ie", "pt")
DAYS = 7
SRM_CHI2 = 40.0
SCALE_FROM, SCALE = 200_000, 26  # `make demo` (200,000 rows per table) builds 26 x as many exposure rows


def exposure_rows(rows: int) -> int:
    """Rows of the exposure table for a demo of ``rows`` rows per table before the lost users:
    26 x from the full demo size up (5,200,000 at ``make demo``: over 5,000,000 after the
    planted loss of about 0.2%), as many below (tests)."""
    return rows * SCALE if rows >= SCALE_FROM else rows


def lost_share(units: int) -> float:
    """Share of one_click users on edge lost: with n edge users, losing a share p of one
    arm's third gives a chi-square of about 2p²n/9 (two arms over, one under), so
    p = sqrt(4.5 χ² / n) (at most 0.9)."""
    return min(0.9, math.sqrt(4.5 * SRM_CHI2 / max(units * BROWSERS[-1][1], 1.0)))


def _pick(u, levels) -> F.Column:
    out, edge = None, 0.0
    for name, share in levels[:-1]:
        edge += share
        out = F.when(u < edge, name) if out is None else out.when(u < edge, name)
    return out.otherwise(levels[-1][0])


def _arm(a: str) -> str:
    return a.replace("_", "")


def checkout_exposures(spark: SparkSession, rows: int, seed: int = 7, *, units: int | None = None,
                       days: int = DAYS) -> tuple[DataFrame, list[tuple]]:
    """The exposure table (about ``exposure_rows(rows)`` rows less the lost users; or
    ``units`` users, when given, on ``days`` days each) and its truths ``(study, metric,
    "ate:<arm>", lift)`` for the two treatment arms."""
    from jobs.warehouse.demo import START_DATE, normal, sigmoid, uniform  # demo.py registers this table

    units = units if units is not None else max(exposure_rows(rows) // days, 60)
    u = spark.range(units).select(
        F.col("id").alias("unit"), F.concat(F.lit("u"), F.col("id")).alias("user_id"),
        _pick(uniform(seed, 1), [(a, 1 / 3) for a in ARMS]).alias("variant"),
        _pick(uniform(seed, 2), BROWSERS).alias("browser"),
        F.element_at(F.array(*map(F.lit, COUNTRIES)), (F.floor(len(COUNTRIES) * uniform(seed, 3) ** 2) + 1)
                     .cast("int")).alias("country"),
        F.round(F.exp(0.8 * normal(seed, 4) + 2.5), 2).alias("pre_revenue"),
        uniform(seed, 5).alias("_lose"))
    lost = (F.col("variant") == "one_click") & (F.col("browser") == "edge") & (F.col("_lose") < lost_share(units))
    u = u.where(~lost).drop("_lose")
    df = u.crossJoin(spark.range(days).withColumnRenamed("id", "day")) \
        .withColumn("id", F.col("unit") * days + F.col("day"))  # the row key of the daily draws
    base = -2.2 + 0.35 * F.log(F.col("pre_revenue"))
    basket = (4.0 + 0.5 * F.col("pre_revenue")) * F.exp(0.3 * normal(seed, 11))
    activity = (0.5 + 0.05 * F.col("pre_revenue")) * F.exp(0.5 * normal(seed, 12))
    potential = []
    for a in ARMS:
        bought = (uniform(seed, 10) < sigmoid(base + CONVERSION_LOGIT[a])).cast("int")
        potential += [bought.alias(f"_p_{_arm(a)}"), F.round(bought * basket * BASKET[a], 2).alias(f"_r_{_arm(a)}"),
                      (1 + F.floor(activity * SESSIONS[a])).cast("int").alias(f"_s_{_arm(a)}")]
    df = df.select("unit", "user_id", F.date_add(F.lit(START_DATE).cast("date"), F.col("day").cast("int"))
                   .alias("event_date"), "variant", "browser", "country", "pre_revenue", *potential)
    observed = {k: F.element_at(F.create_map(*[x for a in ARMS for x in (F.lit(a), F.col(f"_{k}_{_arm(a)}"))]),
                                F.col("variant")) for k in ("s", "p", "r")}
    truths = _truths(df)
    out = df.select("user_id", "event_date", "variant", "browser", "country", "pre_revenue",
                    observed["s"].alias("sessions"), observed["p"].alias("purchased"), observed["r"].alias("revenue"))
    return out, truths


def _truths(df: DataFrame) -> list[tuple]:
    """The lifts of every treatment arm over control on the users kept, from their
    potential outcomes (one aggregation to users, one over them)."""
    per_unit = df.groupBy("unit").agg(*[agg for a in ARMS for agg in (
        F.sum(f"_r_{_arm(a)}").alias(f"r_{_arm(a)}"), F.max(f"_p_{_arm(a)}").alias(f"p_{_arm(a)}"),
        F.sum(f"_s_{_arm(a)}").alias(f"s_{_arm(a)}"))])
    row = collect_small(per_unit.agg(*[agg for a in ARMS for agg in (
        F.avg(f"r_{_arm(a)}").alias(f"r_{a}"), F.avg(f"p_{_arm(a)}").alias(f"p_{a}"),
        (F.sum(f"r_{_arm(a)}") / F.sum(f"s_{_arm(a)}")).alias(f"rps_{a}"),
        F.percentile(f"r_{_arm(a)}", 0.9).alias(f"q_{a}"))]), 1, "exposure truths")[0]
    out = []
    for a in ARMS[1:]:
        for metric, k in (("revenue", "r"), ("conversion", "p"), ("revenue_per_session", "rps"),
                          ("revenue_p90", "q")):
            out.append((STUDY, metric, f"ate:{a}", float(row[f"{k}_{a}"] - row[f"{k}_control"])))
    return out


__all__ = ("ARMS", "checkout_exposures", "exposure_rows", "lost_share")
