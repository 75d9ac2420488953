# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the Zoom log tables
# MAGIC
# MAGIC A tour of what zoom_ingest writes to `<catalog>.<schema>`:
# MAGIC
# MAGIC - `activity_logs`: one row per sign-in or sign-out
# MAGIC   (lw_id, time, type, email, ip_address, client_type, version);
# MAGIC - `operation_logs`: one row per admin or user operation
# MAGIC   (lw_id, time, operator, category_type, action, operation_detail);
# MAGIC - `zoom_ingest_runs`: one row per stream of a run (window, pages, API calls,
# MAGIC   records, retries, 429s, status, error);
# MAGIC - `zoom_ingest_checkpoints`: one row per Zoom account and stream, its cursor
# MAGIC   (every record before it is stored);
# MAGIC - `zoom_ingest_rejects`: records that could not be parsed, with raw JSON and reason.
# MAGIC
# MAGIC `time` is a TIMESTAMP; this notebook shows it in UTC. `lw_id` is a SHA-256 of the
# MAGIC record's fields: the same Zoom record always has the same `lw_id`.

# COMMAND ----------

# Notebook globals (spark, dbutils, display) are expected here.
# ruff: noqa: F821
dbutils.widgets.text("catalog", "", "catalog (required)")
dbutils.widgets.text("schema", "zoom", "schema")
dbutils.widgets.text("days", "30", "days to look at")

spark.conf.set("spark.sql.session.timeZone", "UTC")
# Catalog and schema through the API: the queries below name the tables alone.
spark.catalog.setCurrentCatalog(dbutils.widgets.get("catalog"))
spark.catalog.setCurrentDatabase(dbutils.widgets.get("schema"))
days = int(dbutils.widgets.get("days"))


def show(query: str, **parameters: object) -> None:
    """Run a query with named parameters (:name) and display the result."""
    display(spark.sql(query, args=parameters or None))


# COMMAND ----------

# MAGIC %md
# MAGIC ## The tables at a glance

# COMMAND ----------

show(
    """
    SELECT 'activity_logs' AS table_name, count(*) AS rows, min(time) AS oldest, max(time) AS newest
    FROM activity_logs
    UNION ALL
    SELECT 'operation_logs', count(*), min(time), max(time) FROM operation_logs
    UNION ALL
    SELECT 'zoom_ingest_rejects', count(*), min(rejected_at), max(rejected_at)
    FROM zoom_ingest_rejects
    """
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Runs
# MAGIC The latest runs, newest first, and every run that did not succeed lately. A
# MAGIC `failed` stream kept its checkpoint: the next run goes on from there.

# COMMAND ----------

show(
    """
    SELECT run_id, account_id, stream, mode, status, started_at, duration_seconds,
           window_start, window_end, windows, pages, api_calls, records_fetched,
           records_inserted, records_rejected, retries, rate_limited,
           cursor_before, cursor_after, error
    FROM zoom_ingest_runs
    ORDER BY started_at DESC, stream
    LIMIT 50
    """
)

# COMMAND ----------

show(
    """
    SELECT date(started_at) AS day, stream, status, count(*) AS runs,
           sum(records_inserted) AS inserted, sum(rate_limited) AS responses_429,
           max(error) AS an_error
    FROM zoom_ingest_runs
    WHERE started_at >= current_timestamp() - make_interval(0, 0, 0, :days)
    GROUP BY ALL
    ORDER BY day DESC, stream, status
    """,
    days=days,
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Checkpoints
# MAGIC How far behind now each stream's cursor is. Records are complete up to the cursor;
# MAGIC Zoom publishes some late, which the lookback and the daily reconcile pick up.

# COMMAND ----------

show(
    """
    SELECT account_id, stream, cursor, updated_at, run_id,
           round((unix_seconds(current_timestamp()) - unix_seconds(cursor)) / 3600, 1)
             AS hours_behind
    FROM zoom_ingest_checkpoints
    ORDER BY account_id, stream
    """
)

# COMMAND ----------

show(
    """
    SELECT stream, reason, count(*) AS records, max(rejected_at) AS last_seen,
           max(raw_json) AS an_example
    FROM zoom_ingest_rejects
    GROUP BY stream, reason
    ORDER BY records DESC
    """
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Sign-ins and sign-outs

# COMMAND ----------

show(
    """
    SELECT date(time) AS day, type, count(*) AS events, count(DISTINCT email) AS users
    FROM activity_logs
    WHERE time >= current_timestamp() - make_interval(0, 0, 0, :days)
    GROUP BY ALL
    ORDER BY day DESC, type
    """,
    days=days,
)

# COMMAND ----------

# Users who signed in from many addresses in one day: travel, VPNs, or shared credentials.
show(
    """
    SELECT email, date(time) AS day, count(DISTINCT ip_address) AS addresses,
           collect_set(ip_address) AS ip_addresses, collect_set(client_type) AS clients
    FROM activity_logs
    WHERE type = 'Sign in' AND time >= current_timestamp() - make_interval(0, 0, 0, :days)
    GROUP BY email, date(time)
    HAVING count(DISTINCT ip_address) >= 3
    ORDER BY addresses DESC, day DESC
    LIMIT 100
    """,
    days=days,
)

# COMMAND ----------

show(
    """
    SELECT client_type, version, count(*) AS sign_ins, count(DISTINCT email) AS users,
           max(time) AS last_seen
    FROM activity_logs
    WHERE type = 'Sign in'
    GROUP BY ALL
    ORDER BY sign_ins DESC
    LIMIT 50
    """
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Operations

# COMMAND ----------

show(
    """
    SELECT category_type, action, count(*) AS operations, count(DISTINCT operator) AS operators
    FROM operation_logs
    WHERE time >= current_timestamp() - make_interval(0, 0, 0, :days)
    GROUP BY ALL
    ORDER BY operations DESC
    """,
    days=days,
)

# COMMAND ----------

# Changes to roles, account settings and sub accounts: who did what, newest first.
show(
    """
    SELECT time, operator, category_type, action, operation_detail
    FROM operation_logs
    WHERE lower(category_type) IN ('role', 'account', 'sub account', 'sub_account')
      AND time >= current_timestamp() - make_interval(0, 0, 0, :days)
    ORDER BY time DESC
    LIMIT 200
    """,
    days=days,
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## How the tables are stored
# MAGIC The log tables are liquid clustered on `time` (`clusteringColumns = [time]`): the
# MAGIC job's merges and time-range queries read only the files of the range they need.
# MAGIC The job's daily reconcile runs `OPTIMIZE`; predictive optimization may too.

# COMMAND ----------

for table in ("activity_logs", "operation_logs", "zoom_ingest_runs"):
    display(
        spark.sql(f"DESCRIBE DETAIL {table}").select(
            "name", "format", "clusteringColumns", "numFiles", "sizeInBytes", "lastModified"
        )
    )

# COMMAND ----------

display(spark.sql("DESCRIBE HISTORY activity_logs").limit(20))
