"""`make bench`: throughput and latency figures as JSON lines (never timed tests)."""
