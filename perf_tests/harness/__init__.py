"""The harness behind the gate: config, specs, builders, cache, measurements, judge, reports."""
