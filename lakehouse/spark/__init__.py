"""Spark as the scale-out engine: the session built from the settings, and Delta tables
read and written from Spark, through delta-spark where its jars are on the classpath or
through the bridge to delta-rs where they are not.

pyspark is an optional dependency (the `spark` and `test` extras): every module here
imports it inside functions, so the core imports without it.
"""
