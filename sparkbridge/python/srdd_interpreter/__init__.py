"""srdd interpreter: the PySpark driver process of one srdd session.

The Go node (package sparkbridge) starts ``python -m srdd_interpreter`` and
talks to it over a framed, multiplexed protocol on a unix socket; see
sparkbridge/DESIGN.md for the contract.
"""

PROTOCOL_NAME = "srdd-interpreter"
PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_NAME", "PROTOCOL_VERSION"]
