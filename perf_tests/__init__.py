"""seq2seq-perf-gate: the gate tests, the harness plugin and its unit tests."""
