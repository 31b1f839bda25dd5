"""Hypothesis profiles for the fuzz suites (`tests/test_fuzz_*.py`).

`ci` (the default) is derandomised, so a CI run is reproducible and the whole fuzz suite stays within
about two minutes on two cores; `HYPOTHESIS_PROFILE=long` runs `LONG_FACTOR` times as many examples with
fresh randomness and keeps failing examples in a database outside the repository, for local hunting:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_fuzz_parsers.py tests/test_fuzz_xdf.py -q

Tests size themselves with `examples(n)`: n examples in `ci`, n * LONG_FACTOR in `long`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

LONG_FACTOR = 20
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("long", deadline=None, print_blob=True, suppress_health_check=_SLOW_OK,
                          database=DirectoryBasedExampleDatabase(
                              Path(tempfile.gettempdir()) / "eyemotion-hypothesis"))
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"HYPOTHESIS_PROFILE={PROFILE!r}: use 'ci' (default) or 'long'")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """How many examples a fuzz test runs: `n` in the ci profile, more in the long one."""
    return n * LONG_FACTOR if PROFILE == "long" else n
