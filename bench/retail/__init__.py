"""Recommenders on UCI Online Retail: ALS, item-kNN, BPR, EASE and popularity, chosen on
validation, reported on the last month."""
