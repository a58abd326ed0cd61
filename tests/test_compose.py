"""docker/compose.yaml is fit for real use, read statically (there is no Docker engine here).

What the issue asks of it and what an operator relies on: the TLS proxy is the only service
with a published port; the nodes trust exactly that one hop and only its address; every
service has a health check; secrets come from the env file (``docker/.env``, documented by
``docker/.env.example``) and nothing secret is written in the compose file; the proxy balances
over every node and polls their readiness; migrations run once (node 2 waits for node 1).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sso.config import DefaultConfig

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SECRET_NAMES = ("SSO_SECRET_KEY", "SSO_KEY_ENCRYPTION_KEY", "POSTGRES_PASSWORD",
                "REDIS_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _nodes(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items()
            if "build" in service and service["build"]["dockerfile"] == "docker/Dockerfile"}


def _proxy(compose: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [(name, s) for name, s in compose["services"].items()
                if str(s.get("image", "")).startswith("caddy")]
    return found


def test_the_expected_services(compose: dict[str, Any]) -> None:
    images = {name: str(s.get("image", "")) for name, s in compose["services"].items()}
    assert any(image.startswith("postgres:") for image in images.values())
    assert any(image.startswith("redis:") for image in images.values())
    assert len(_nodes(compose)) == 2
    _proxy(compose)


def test_only_the_proxy_publishes_a_port(compose: dict[str, Any]) -> None:
    name, proxy = _proxy(compose)
    published = {n: s["ports"] for n, s in compose["services"].items() if s.get("ports")}
    assert set(published) == {name}
    assert [str(p).split(":")[-2] for p in proxy["ports"]] == ["443"]
    for service in compose["services"].values():
        assert "network_mode" not in service  # host networking would publish everything


def test_the_backend_network_is_internal(compose: dict[str, Any]) -> None:
    assert compose["networks"]["backend"]["internal"] is True
    for name, service in compose["services"].items():
        networks = service.get("networks", ["default"])
        if name != _proxy(compose)[0]:
            assert list(networks) == ["backend"], name


def test_nodes_trust_exactly_the_proxy(compose: dict[str, Any]) -> None:
    _, proxy = _proxy(compose)
    proxy_address = proxy["networks"]["backend"]["ipv4_address"]
    for name, node in _nodes(compose).items():
        environment = node["environment"]
        assert str(environment["SSO_TRUSTED_PROXIES"]) == "1", name
        assert environment["SSO_TRUSTED_PROXY_NETWORKS"] == proxy_address, name


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
    for name, node in _nodes(compose).items():
        assert "/readyz" in " ".join(node["healthcheck"]["test"]), name


def test_the_proxy_balances_over_every_node_by_readiness(compose: dict[str, Any]) -> None:
    caddyfile = (DOCKER / "Caddyfile").read_text(encoding="utf-8")
    _, proxy = _proxy(compose)
    assert any(v.startswith("./Caddyfile:/etc/caddy/Caddyfile") for v in proxy["volumes"])
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile)
    assert upstreams
    assert set(upstreams.group(1).split()) == {f"{n}:5000" for n in _nodes(compose)}
    assert re.search(r"^\s*health_uri /readyz$", caddyfile, re.M)


def test_migrations_run_once(compose: dict[str, Any]) -> None:
    """Both nodes run the entrypoint's `sso db upgrade`; the second waits for the first to be
    ready, so the two never migrate at the same time."""
    first, second = sorted(_nodes(compose))
    assert compose["services"][second]["depends_on"] == {
        first: {"condition": "service_healthy"}}
    assert compose["services"][first]["depends_on"]["db"] == {"condition": "service_healthy"}


def test_secrets_come_from_the_env_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    documented = dict(line.split("=", 1) for line in example.splitlines()
                      if line and not line.startswith("#"))
    # Every ${VAR} the compose file needs is in the example, and required (`:?`).
    referenced = set(re.findall(r"\$\{(\w+)", text))
    assert referenced <= set(documented)
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert re.search(rf"\$\{{{name}:\?", text), name
    for node in _nodes(compose).values():
        assert node["env_file"] == [".env"]
        environment = node["environment"]
        for name in SECRET_NAMES:
            assert name not in environment  # from the env file, not written here
    for name in SECRET_NAMES:
        assert name in documented
        # No value is written into the compose file itself.
        assert not re.search(rf"{name}\s*[:=]\s*[\"']?(?!\$\{{)\w", text), name
    assert "docker/.env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def test_node_settings_are_real_settings(compose: dict[str, Any]) -> None:
    """A misspelt SSO_ variable would be silently ignored."""
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^(SSO_\w+)=", example, re.M))
    for node in _nodes(compose).values():
        names |= {n for n in node["environment"] if n.startswith("SSO_")}
    # Read by the image's entrypoint or the Caddyfile rather than by the provider's settings.
    outside = {"SSO_WORKERS", "SSO_DOMAIN"}
    assert "SSO_WORKERS" in (DOCKER / "entrypoint.sh").read_text(encoding="utf-8")
    assert "SSO_DOMAIN" in (DOCKER / "Caddyfile").read_text(encoding="utf-8")
    for name in names - outside:
        assert hasattr(DefaultConfig, name[4:]), name
