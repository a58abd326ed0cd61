"""The cluster: three provider nodes behind HAProxy, one PostgreSQL database, one Redis."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster.harness import (
    HAProxy,
    Node,
    RedisServer,
    free_port,
    node_environment,
    postgres_database,
    seed,
)
from tests.conftest import _pg_admin_url, _pg_available


def require(tool: str) -> None:
    """Skip without a tool, unless ``SSO_TEST_REQUIRE_CLUSTER=1`` (``.ci/run``) makes its
    absence a failure."""
    if shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}"):
        return
    message = f"{tool} is not installed (apt-get install {tool})"
    if os.environ.get("SSO_TEST_REQUIRE_CLUSTER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def require_postgres() -> None:
    if _pg_available():
        return
    message = f"PostgreSQL at {_pg_admin_url()} does not answer"
    if os.environ.get("SSO_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Cluster:
    balancer: HAProxy
    nodes: dict[str, Node]
    env: dict[str, str]
    facts: dict[str, Any]
    redis: RedisServer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("haproxy")
    require("redis-server")
    require_postgres()
    folder = tmp_path_factory.mktemp("cluster")
    redis_server = RedisServer(folder / "redis").start()
    started: list[Any] = [redis_server]
    try:
        with postgres_database(_pg_admin_url()) as database_url:
            port = free_port()
            # The nodes keep introspection's token statuses, as an API-heavy deployment
            # would: test_cluster checks that a revocation still reaches every node.
            env = node_environment(folder, f"http://127.0.0.1:{port}", database_url,
                                   {"REDIS_URL": redis_server.url},
                                   SSO_INTROSPECTION_CACHE="30")
            facts = seed(env)
            nodes = {f"n{i}": Node(f"n{i}", env, folder / f"n{i}") for i in (1, 2, 3)}
            for node in nodes.values():
                started.append(node.start())
            for node in nodes.values():
                node.wait_ready()
            balancer = HAProxy(list(nodes.values()), folder / "haproxy", port=port)
            started.append(balancer.start())
            balancer.wait_states(dict.fromkeys(nodes, "UP"))
            yield Cluster(balancer, nodes, env, facts, redis_server)
            for process in reversed(started):
                process.stop()
            started.clear()
    finally:
        for process in reversed(started):
            process.stop()
