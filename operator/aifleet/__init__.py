"""aifleet: a Kubernetes operator that deploys and autoscales AI inference API fleets."""

__version__ = "0.1.0"
