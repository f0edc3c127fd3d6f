"""Kafka topics and their dead-letter topics: a pure plan (`plan`) and the loop that carries it out (`reconcile`)."""
