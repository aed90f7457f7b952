"""The srdd node of the Livy client tests (client/livy/conftest.py), for
Airflow's Livy provider, which lives in its own virtualenv: the node runs
the project's Python (SRDD_NODE_PYTHON), the tests this one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("livy_conftest", Path(__file__).resolve().parents[1] / "livy" / "conftest.py")
assert _spec is not None and _spec.loader is not None
livy_conftest = importlib.util.module_from_spec(_spec)
sys.modules["livy_conftest"] = livy_conftest  # dataclasses look their module up
_spec.loader.exec_module(livy_conftest)

srdd = livy_conftest.srdd
Srdd = livy_conftest.Srdd
