"""Fraud silver: card transactions, one row per transaction id, rule-checked."""

from assets.silver_factory import silver_asset
from lakehouse.catalog import SILVER_TRANSACTIONS

silver_transactions = silver_asset(SILVER_TRANSACTIONS)
