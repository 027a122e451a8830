"""Production monitoring: data drift reports between a reference and a current window."""
