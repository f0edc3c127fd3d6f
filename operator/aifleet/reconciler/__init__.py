"""The reconciler: compares what the renderer wants with what the cluster has, and closes the gap."""
