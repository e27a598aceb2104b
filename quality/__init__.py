"""Data quality: the expectation suites of every silver, gold and model table, run with
Great Expectations 1.x over the rows about to be written, and the gate that refuses a day
whose rows fail a blocking check. Free of Dagster: `assets/` turns the verdicts into asset
check results."""
