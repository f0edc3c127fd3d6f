"""Edges to the outside world: the Kubernetes API, Prometheus, Kafka. Only data moves here."""
