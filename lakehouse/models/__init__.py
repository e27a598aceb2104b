"""Models: training, evaluation, artifacts and loaders of the recommender, the fraud model
and the failure model; the registry in the lake; the SageMaker training option. Their
features live in `lakehouse.features`."""
