"""Spark Connect inside the session's own SparkContext (issue 27).

The node's Spark Connect port (connectapi) proxies each client's gRPC
streams to a Spark Connect server that this interpreter starts on demand
in its existing SparkContext: on 127.0.0.1, on a free port, with a
per-session token the node chose and holds (the client never sees it).
Each Connect client gets its own SparkSession over this context, so
global temp views are what the clients, Livy statements and the node's
shared RDDs have in common: every shared RDD of the session is the global
temp view ``global_temp.<name>`` (columns key, value as JSON text),
refreshed by ``refresh_views`` before each plan the node forwards.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

log = logging.getLogger("srdd_interpreter.connect")

# Spark Connect's settings, read from the live SparkConf when it starts.
CONF_ADDRESS = "spark.connect.grpc.binding.address"
CONF_PORT = "spark.connect.grpc.binding.port"
CONF_TOKEN = "spark.connect.authenticate.token"


class ConnectError(Exception):
    """Spark Connect cannot run in this session (the message says why)."""


class Connect:
    """The session's Spark Connect server and the global temp views of its
    shared RDDs (thread-safe)."""

    def __init__(self, spark: Any) -> None:
        self._spark = spark
        self._lock = threading.Lock()
        self._port: Optional[int] = None
        self._token: Optional[str] = None
        # name -> the DataFrame registered as global_temp.<name> (kept
        # referenced so its data stays cached; compared by identity: a
        # store returns the same DataFrame until its next write).
        self._views: dict[str, Any] = {}

    def start(self, token: str) -> int:
        """Start Spark Connect once, answering its port; a second start
        with the same token answers the same port."""
        if len(token) < 16:
            raise ConnectError("the Spark Connect token must be at least 16 characters")
        with self._lock:
            if self._port is not None:
                if token != self._token:
                    raise ConnectError("Spark Connect already runs in this session with another token")
                return self._port
            sc = self._spark.sparkContext
            jvm = sc._jvm
            # The SparkContext's own conf is the one SparkEnv (and so Spark
            # Connect's start) reads.
            conf = sc._jsc.sc().conf()
            conf.set(CONF_ADDRESS, "127.0.0.1")
            conf.set(CONF_PORT, "0")  # a free port
            conf.set(CONF_TOKEN, token)
            try:
                jvm.org.apache.spark.sql.connect.service.SparkConnectService.start(sc._jsc.sc())
            finally:
                # Read once at start (the token check holds its own copy):
                # session code reading the conf afterwards finds nothing.
                conf.remove(CONF_TOKEN)
            # localPort has no static forwarder: ask the Scala object.
            module = getattr(getattr(jvm.org.apache.spark.sql.connect.service, "SparkConnectService$"), "MODULE$")
            port = int(module.localPort())
            if port <= 0:
                raise ConnectError("Spark Connect did not report its port")
            self._port, self._token = port, token
            log.info("Spark Connect serving on 127.0.0.1:%d", port)
            return port

    def refresh_views(self, tables: Any) -> int:
        """Make global_temp.<name> every shared RDD's data as of now;
        answers how many views were (re)registered."""
        changed = 0
        with self._lock:
            names = set(tables.names())
            for name in sorted(names):
                try:
                    df = tables.get(name).df
                except KeyError:  # dropped meanwhile
                    continue
                if self._views.get(name) is df:
                    continue
                df.createOrReplaceGlobalTempView(name)
                self._views[name] = df
                changed += 1
            for name in [n for n in self._views if n not in names]:
                del self._views[name]
                self._spark.catalog.dropGlobalTempView(name)
                changed += 1
        return changed
