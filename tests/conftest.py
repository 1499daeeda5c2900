"""Suite-wide test settings."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# The machine is shared and noisy: per-example deadlines would make property tests flaky without
# testing anything about correctness. Examples stay bounded by max_examples and pytest-timeout.
settings.register_profile("poi", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("poi")
