"""Model features, one home for each domain, used by training (the Dagster assets) and by
serving (the online services) alike, so a model always sees at serving time exactly the
features it was trained on: no training/serving skew."""
