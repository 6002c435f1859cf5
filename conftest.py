"""Root conftest: only lists the plugins (pytest allows pytest_plugins only here)."""

pytest_plugins = ["perf_tests.harness.plugin", "perf_tests.integration.background", "pytester"]
