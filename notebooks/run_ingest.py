# Databricks notebook source
# MAGIC %md
# MAGIC # Run or backfill zoom_ingest
# MAGIC
# MAGIC Runs the same code as the `zoom_ingest` job, once, for one Zoom account, with the
# MAGIC settings in the widgets above. Use it to try a setup, to backfill, or to re-read a
# MAGIC period. Credentials come from the secret scope (keys `account_id`, `client_id`,
# MAGIC `client_secret`, or `<account>_account_id`, … when *account* is set); see
# MAGIC `docs/databricks.md`.
# MAGIC
# MAGIC - **First run** of an account: everything from *backfill_start* (a UTC date; empty:
# MAGIC   all that Zoom still holds, about 6 months) up to now.
# MAGIC - **Later runs** (*incremental*): from the checkpoint minus *lookback*.
# MAGIC - **reconcile**: re-reads the last *reconcile_days* full days without stopping early;
# MAGIC   nothing is ever inserted twice, so re-reading is always safe.

# COMMAND ----------

# MAGIC %md
# MAGIC Install the wheel that `databricks bundle deploy` uploaded, the very one the jobs
# MAGIC run, from the bundle's artifact path (`<root_path>/artifacts/.internal/`; this
# MAGIC notebook is synced to `<root_path>/files/notebooks/`). Nothing is built from the
# MAGIC synced source. Python restarts afterwards.

# COMMAND ----------

# Notebook globals (spark, dbutils, display) and imports in later cells are expected here.
# ruff: noqa: F821, E402
import glob
import os

notebook = dbutils.notebook.entry_point.getDbutils().notebook().getContext().notebookPath().get()
bundle_root, marker, _ = notebook.partition("/files/notebooks/")
if not marker:
    raise RuntimeError(f"{notebook} is not in a deployed bundle: run `databricks bundle deploy`")
# dynamic_version gives every deploy a new wheel: the newest is the one the jobs run.
wheels = glob.glob(f"/Workspace{bundle_root}/artifacts/.internal/zoom_ingest-*.whl")
if not wheels:
    raise RuntimeError(f"no zoom_ingest wheel under {bundle_root}/artifacts: deploy the bundle")
wheel = max(wheels, key=os.path.getmtime)
print(f"installing {wheel}")
# %pip reads the path from a requirements file: a magic cannot take a Python variable.
with open("/tmp/zoom_ingest_wheel.txt", "w") as requirements:
    requirements.write(wheel + "\n")

# COMMAND ----------

# MAGIC %pip install --quiet -r /tmp/zoom_ingest_wheel.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

# One widget per setting the notebook takes, from the one table of settings
# (zoom_ingest/options.py): names, starting values and choices as the job has them.
from zoom_ingest.options import NOTEBOOK, for_entry_point

widgets = dbutils.widgets
for option in for_entry_point(NOTEBOOK):
    if option.choices:
        widgets.dropdown(
            option.name, option.starting_value, list(option.choices), option.widget_label
        )
    else:
        widgets.text(option.name, option.starting_value, option.widget_label)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Run
# MAGIC Exit status 0: every stream succeeded; 1: a stream failed (its row in
# MAGIC `zoom_ingest_runs` has the error); 2: a setting is wrong (nothing was called);
# MAGIC 3: Zoom's daily rate limit stopped the run (run again after the time it names);
# MAGIC 4: another run in this session holds the destination.

# COMMAND ----------

from zoom_ingest.databricks_job import main

arguments = [f"{option.flag}={widgets.get(option.name)}" for option in for_entry_point(NOTEBOOK)]
exit_code = main(arguments)
print(f"exit status {exit_code}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## What the run did
# MAGIC One row per stream: the window it covered, pages and API calls, records fetched,
# MAGIC inserted and rejected, retries and 429s, the cursor before and after.

# COMMAND ----------

from pyspark.sql import functions as F

from zoom_ingest.engines.rules import quote_identifier

catalog, schema = widgets.get("catalog"), widgets.get("schema")
destination = f"{quote_identifier(catalog)}.{quote_identifier(schema)}"
runs = spark.table(f"{destination}.zoom_ingest_runs")
display(runs.orderBy(F.desc("started_at")).limit(20))

# COMMAND ----------

display(spark.table(f"{destination}.zoom_ingest_checkpoints"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Backfilling a period again
# MAGIC *backfill_start* counts only while an account has no checkpoint. To re-read an
# MAGIC earlier period of an account that already has one, either
# MAGIC - run **reconcile** with *reconcile_days* reaching back far enough (at most 180), or
# MAGIC - delete that account's checkpoint rows, then run with *backfill_start*:
# MAGIC   ```sql
# MAGIC   DELETE FROM <catalog>.<schema>.zoom_ingest_checkpoints
# MAGIC   WHERE account_id = '<Zoom account id>' AND stream = 'activity_logs'
# MAGIC   ```
# MAGIC Rows already in the tables are never inserted twice.
