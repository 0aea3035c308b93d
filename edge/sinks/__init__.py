"""Outputs: the sink interface (base), the cart display (display), the JSON lines log (jsonl), the
CSV log (csvlog), the recording (recording), the console status (console) and systemd (systemd)."""
