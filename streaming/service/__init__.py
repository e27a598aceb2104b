"""What the online services share: bearer-token auth, the circuit breaker, metrics
exposition, the registry watch and the uvicorn runner."""
