"""Fraud silver: card transactions, one row per transaction id, rule-checked."""

from assets.silver_factory import silver_asset

silver_transactions = silver_asset("transactions", owner="team:fraud")
