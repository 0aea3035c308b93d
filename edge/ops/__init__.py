"""Tools for the people who run and test carts: the on-device benchmark (bench) and the pre-flight
checks (doctor)."""
