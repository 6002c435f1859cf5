"""Fast tests of the harness: no model is built."""
