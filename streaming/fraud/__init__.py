"""The fraud decision service (step 7): decisions, state, rules, the audit trail."""
