"""Tests that build real (small) models: other architectures, and the gate testing itself."""
