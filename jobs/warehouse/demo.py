"""The demo warehouse: six partitioned tables simulated with known causal effects.

Random draws are the engines' draws (:mod:`causal_core.moments.draws`), built as Column
expressions keyed on the row id, ``(xxhash64(id, seed, stream) >>> 11) * 2^-53``, so a
table is the same whatever the partitioning. Each table's true effects are computed
from the simulated potential outcomes in the same job and written to ``demo.truth``.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.spark import compiler
from jobs.spark.collect import collect_small
from jobs.warehouse.demo_experiment import checkout_exposures

DATABASE = "demo"
START_DATE = "2026-11-01"


def uniform(seed: int, stream: int) -> Column:
    """U[0, 1) keyed on (id, seed, stream): independent streams, no partition dependence."""
    return compiler.uniform(F.col("id"), seed, stream)


def normal(seed: int, stream: int) -> Column:
    """N(0,1) by Box–Muller (Box & Muller 1958) on two hashed uniforms; 1 - u lies in
    (0, 1], so the logarithm is finite."""
    u1, u2 = uniform(seed, stream), uniform(seed, stream + 10_000)
    return F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos(2.0 * math.pi * u2)


def bernoulli(p: Column, seed: int, stream: int) -> Column:
    return (uniform(seed, stream) < p).cast("int")


def sigmoid(z: Column) -> Column:
    return 1.0 / (1.0 + F.exp(-z))


def _day(n_days: int) -> Column:
    return F.date_add(F.lit(START_DATE).cast("date"), (F.col("id") % n_days).cast("int"))


def checkout_events(spark: SparkSession, n: int, seed: int = 1) -> tuple[DataFrame, list[tuple]]:
    """A/B test: randomized variant, revenue (ATE 1.5) and conversion (logistic, ATE from p1 - p0)."""
    df = spark.range(n).select(
        "id", F.concat(F.lit("u"), F.col("id")).alias("user_id"), _day(7).alias("event_date"),
        F.when(uniform(seed, 1) < 0.5, "web").when(uniform(seed, 1) < 0.8, "ios").otherwise("android")
        .alias("platform"),
        F.exp(0.6 * normal(seed, 2) + 2.0).alias("pre_revenue"),
        F.when(uniform(seed, 3) < 0.5, "control").otherwise("onepage").alias("variant"),
    )
    treat = (F.col("variant") == "onepage").cast("double")
    plat = F.when(F.col("platform") == "ios", 2.0).when(F.col("platform") == "android", -1.0).otherwise(0.0)
    lin = -1.5 + 0.05 * F.col("pre_revenue")
    df = df.select("*", sigmoid(lin).alias("_p0"), sigmoid(lin + 0.4).alias("_p1"))
    df = df.select(
        "user_id", "event_date", "platform", "pre_revenue", "variant",
        (0.8 * F.col("pre_revenue") + plat + 1.5 * treat + 3.0 * normal(seed, 4)).alias("revenue"),
        (uniform(seed, 5) < F.when(treat == 1.0, F.col("_p1")).otherwise(F.col("_p0"))).cast("int").alias("converted"),
        (F.col("_p1") - F.col("_p0")).alias("_tau_conv"),
    )
    tau_conv = collect_small(df.agg(F.avg("_tau_conv")), 1)[0][0]
    truth = [("checkout_experiment", "revenue", "ate", 1.5), ("checkout_experiment", "converted", "ate", tau_conv)]
    return df.drop("_tau_conv"), truth


def customers(spark: SparkSession, n: int, seed: int = 2) -> tuple[DataFrame, list[tuple]]:
    """Observational: discount targeted on age, tenure and region; heterogeneous effect on spend."""
    df = spark.range(n).select(
        "id", F.col("id").alias("customer_id"), _day(4).alias("snapshot_date"),
        (18.0 + 62.0 * uniform(seed, 1)).alias("age"),
        F.floor(60.0 * uniform(seed, 2)).cast("int").alias("tenure_months"),
        F.element_at(F.array(*[F.lit(r) for r in ("north", "south", "east", "west")]),
                     (F.floor(4.0 * uniform(seed, 3)) + 1).cast("int")).alias("region"),
    )
    long_t = (F.col("tenure_months") >= 24).cast("double")
    reg = F.when(F.col("region") == "north", 0.6).when(F.col("region") == "south", -0.4).otherwise(0.0)
    p = sigmoid(-0.5 + 0.04 * (F.col("age") - 45.0) + 0.9 * long_t + reg)
    df = df.select("*", bernoulli(p, seed, 4).alias("discount"), (4.0 + 0.1 * (F.col("age") - 45.0)).alias("_tau"))
    visits = 2.0 + 1.0 * F.col("discount") + 0.02 * F.col("age") + normal(seed, 5)
    df = df.select("*", visits.alias("visits"))
    spend = (20.0 + 0.9 * F.col("age") - 0.006 * F.col("age") * F.col("age") + 5.0 * long_t + 8.0 * reg
             + F.col("_tau") * F.col("discount") + 3.0 * F.col("visits") + 4.0 * normal(seed, 6))
    df = df.select("*", spend.alias("spend"))
    # A few missing ages, as real CRM tables have; the study drops them with a count.
    df = df.withColumn("age", F.when(uniform(seed, 7) < 0.005, F.lit(None)).otherwise(F.col("age")))
    total = F.col("_tau") + 3.0  # direct effect plus the effect through visits (1.0 * 3.0)
    row = collect_small(df.where(F.col("age").isNotNull()).agg(
        F.avg(total).alias("ate"),
        (F.sum(total * F.col("discount")) / F.sum("discount")).alias("att"),
        (F.sum(total * (1 - F.col("discount"))) / F.sum(1 - F.col("discount"))).alias("atc")), 1)[0]
    truth = [("discount_observational", "spend", t, float(row[t])) for t in ("ate", "att", "atc")]
    return df.drop("id", "_tau"), truth


def ad_exposures(spark: SparkSession, n: int, seed: int = 3) -> tuple[DataFrame, list[tuple]]:
    """Front-door: latent brand affinity confounds ad exposure and purchase; effect 0.6 * 0.3 = 0.18."""
    df = spark.range(n).select("id", F.concat(F.lit("u"), F.col("id")).alias("user_id"), _day(7).alias("event_date"),
                               bernoulli(F.lit(0.5), seed, 1).alias("_u"))
    df = df.select("*", bernoulli(0.2 + 0.5 * F.col("_u"), seed, 2).alias("ad_seen"))
    df = df.select("*", bernoulli(0.1 + 0.6 * F.col("ad_seen"), seed, 3).alias("site_visit"))
    df = df.select("*", bernoulli(0.05 + 0.3 * F.col("site_visit") + 0.3 * F.col("_u"), seed, 4).alias("purchase"))
    return df.drop("id", "_u"), [("ads_frontdoor", "purchase", "ate", 0.18)]


def weekly_sales(spark: SparkSession, n: int, seed: int = 4) -> tuple[DataFrame, list[tuple]]:
    """Instrument: a supplier cost shock moves price; demand slope -2 per unit of price."""
    weeks = 52
    df = spark.range(n).select(
        "id", (F.col("id") % max(n // weeks, 1)).alias("store_id"),
        F.date_add(F.lit("2025-11-03").cast("date"), (7 * (F.col("id") % weeks)).cast("int")).alias("week_start"),
        ((F.col("id") % weeks) < 13).cast("int").alias("season"),
        normal(seed, 1).alias("_u"))
    df = df.select("*", (normal(seed, 2) + 0.5 * F.col("season")).alias("cost_shock"))
    df = df.select("*", (10.0 + F.col("cost_shock") + 0.8 * F.col("_u") + 0.5 * normal(seed, 3)).alias("price"))
    df = df.select("*", (100.0 - 2.0 * F.col("price") + 3.0 * F.col("season") + 2.0 * F.col("_u")
                         + normal(seed, 4)).alias("demand"))
    return df.drop("id", "_u"), [("price_iv", "demand", "ate", -2.0)]


def newsletter(spark: SparkSession, n: int, seed: int = 5) -> tuple[DataFrame, list[tuple]]:
    """A hidden confounder: engaged readers both subscribe and order more. The study's graph
    leaves engagement out (and the tenure -> prior orders edge), so its estimate of the
    newsletter's effect on orders (truly 0.2) is biased, and its refuters say so."""
    df = spark.range(n).select(
        "id", F.col("id").alias("reader_id"), _day(4).alias("signup_date"), normal(seed, 1).alias("_engaged"),
        F.floor(36.0 * uniform(seed, 2)).cast("int").alias("tenure_months"))
    df = df.select("*", (1.0 + 0.05 * F.col("tenure_months") + 0.8 * F.col("_engaged") + normal(seed, 3))
                   .alias("prior_orders"))
    p = sigmoid(-0.6 + 0.3 * F.col("prior_orders") + 1.0 * F.col("_engaged"))
    df = df.select("*", bernoulli(p, seed, 4).alias("subscribed"))
    orders = (2.0 + 0.2 * F.col("subscribed") + 0.5 * F.col("prior_orders") + 0.02 * F.col("tenure_months")
              + 1.0 * F.col("_engaged") + normal(seed, 5))
    return df.select("*", orders.alias("orders")).drop("id", "_engaged"), [("newsletter_refutation", "orders",
                                                                             "ate", 0.2)]


def onboarding(spark: SparkSession, n: int, seed: int = 6) -> tuple[DataFrame, list[tuple]]:
    """Two latent confounders in the "napkin" shape (Pearl & Mackenzie 2018, ch. 7): one
    drives referral and the premium trial, one referral and retention. No adjustment set or
    front door identifies the trial's effect on retention (an instrument does only under a
    linear model); the general ID formula does. The effect is 0.3 on the probability scale."""
    df = spark.range(n).select("id", F.concat(F.lit("a"), F.col("id")).alias("account_id"),
                               _day(4).alias("signup_date"),
                               bernoulli(F.lit(0.5), seed, 1).alias("_u1"), bernoulli(F.lit(0.5), seed, 2).alias("_u2"))
    df = df.select("*", bernoulli(0.2 + 0.3 * F.col("_u1") + 0.3 * F.col("_u2"), seed, 3).alias("referred"))
    df = df.select("*", bernoulli(0.3 + 0.4 * F.col("referred"), seed, 4).alias("tutorial"))
    df = df.select("*", bernoulli(0.1 + 0.4 * F.col("tutorial") + 0.4 * F.col("_u1"), seed, 5).alias("premium_trial"))
    df = df.select("*", bernoulli(0.1 + 0.3 * F.col("premium_trial") + 0.4 * F.col("_u2"), seed, 6).alias("retained"))
    return df.drop("id", "_u1", "_u2"), [("onboarding_napkin", "retained", "ate", 0.3)]


TABLES = {
    "checkout_events": (checkout_events, "event_date"),
    "customers": (customers, "snapshot_date"),
    "ad_exposures": (ad_exposures, "event_date"),
    "weekly_sales": (weekly_sales, "week_start"),
    "newsletter": (newsletter, "signup_date"),
    "onboarding": (onboarding, "signup_date"),
    "checkout_exposures": (checkout_exposures, "event_date"),
}


def build_demo_warehouse(spark: SparkSession, rows: int = 200_000) -> dict[tuple[str, str, str], float]:
    """(Re)write the demo tables, partitioned by date, and ``demo.truth``; return the truths."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    truths: list[tuple] = []
    for table, (make, partition) in TABLES.items():
        df, truth = make(spark, rows)
        df.write.mode("overwrite").partitionBy(partition).format("parquet").saveAsTable(f"{DATABASE}.{table}")
        truths += truth
    spark.createDataFrame(truths, "study string, metric string, target string, value double") \
        .write.mode("overwrite").format("parquet").saveAsTable(f"{DATABASE}.truth")
    return {(s, m, t): float(v) for s, m, t, v in truths}
