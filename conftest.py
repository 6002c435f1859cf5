"""Root conftest: only lists the in-repo plugin (pytest allows pytest_plugins only here)."""

pytest_plugins = ["perf_tests.harness.plugin"]
