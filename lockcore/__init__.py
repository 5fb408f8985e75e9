"""lockcore: per-object transaction locks stored as coordination.k8s.io/v1 Leases."""
