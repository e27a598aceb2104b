"""Fraud silver: card transactions and the decision service's decisions, one row per
transaction id, rule-checked."""

from assets.silver_factory import silver_asset
from lakehouse.catalog import SILVER_FRAUD_DECISIONS, SILVER_TRANSACTIONS

silver_transactions = silver_asset(SILVER_TRANSACTIONS)
silver_fraud_decisions = silver_asset(SILVER_FRAUD_DECISIONS)
