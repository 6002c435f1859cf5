"""The gate itself: latency, memory and quality of every variant, judged against limits."""
