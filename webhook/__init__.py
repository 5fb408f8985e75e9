"""leasegate's validating admission webhook: enforces lockcore's locks on writes."""
