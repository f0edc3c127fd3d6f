"""The autoscaler: a pure decision function (`policy.decide`), its metric source, the HPA baseline and a simulator."""
