"""SageMaker Processing job entrypoints and their launcher.

- ``python -m featureshare.jobs.build_dataset --spec /opt/ml/processing/input/spec/spec.toml`` builds a training
  set from a dataset spec (container credentials -> assumed central role -> consumer bucket);
- ``python -m featureshare.jobs.ingest --group G --input DIR`` ingests csv/parquet files, sharded across
  instances, and writes a report per instance (:func:`featureshare.jobs.ingest.merge_reports` merges them);
- :mod:`featureshare.jobs.runtime` is what both entrypoints share: logging, the container's and the central
  session, featureshare errors mapped to the CLI's exit codes;
- :mod:`featureshare.jobs.launcher` builds the ``CreateProcessingJob`` and EventBridge Scheduler
  ``CreateSchedule`` requests (``featureshare jobs submit|schedule``).
"""
