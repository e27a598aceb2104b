"""`lakehouse serve recommendations`: the e-commerce recommendation API, answering from the
session (Redis), else the nightly batch lists, else popularity, always with a 200."""
