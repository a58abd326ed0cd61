"""Three stateless nodes behind HAProxy share everything through PostgreSQL and Redis.

Each node is the production server (``sso serve``: granian, one worker); HAProxy
(Debian's) balances over them and checks ``/readyz``. Requests go through HAProxy, pinned to a
node where the test needs one (``X-SSO-Node``), and each answer names the node that served it
(``X-SSO-Served-By``), so a step that only works when the nodes share their state is seen to
cross nodes. The last test kills a node under traffic.
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.cluster.conftest import Cluster
from tests.cluster.harness import PASSWORD, PIN_HEADER, REDIRECT_URI, SERVED_BY, sso, wait_until
from tests.conftest import pkce_pair

pytestmark = pytest.mark.slow
GENEROUS = 30.0  # seconds: a bound against hanging, not a performance assertion
#: Seconds a node may go on answering from a token status it kept, after a change it was
#: told about (it checks every second; a status it was not told about lives 30 s).
KEPT_AT_MOST = 10.0
#: How long after a node's death a request may still have been on its way to it.
SETTLE = 0.05


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'data-csrf="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


class Browser(requests.Session):
    """A browser whose requests go through HAProxy, pinned to one node at a time."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__()
        self.base = cluster.balancer.url

    def on(self, node: str) -> Browser:
        self.headers[PIN_HEADER] = node
        return self

    def go(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", GENEROUS)
        response = self.request(method, urljoin(self.base, path), **kwargs)
        assert response.headers.get(SERVED_BY) == self.headers[PIN_HEADER], response.headers
        return response


def _authorize_params(cluster: Cluster) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    return {"response_type": "code", "client_id": cluster.facts["client_id"],
            "redirect_uri": REDIRECT_URI, "scope": "openid profile",
            "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256"}, verifier


def _follow_to_app(browser: Browser, response: requests.Response) -> str:
    for _ in range(8):
        assert response.status_code in (302, 303), response.text[:400]
        location = response.headers["Location"]
        if location.startswith(REDIRECT_URI):
            return parse_qs(urlsplit(location).query)["code"][0]
        response = browser.go("GET", location)
    raise AssertionError("never came back to the app")


def _sign_in(browser: Browser, flow_id: str = "", username: str = "alice") -> requests.Response:
    query = {"flow": flow_id} if flow_id else {}
    page = browser.go("GET", "/login", params=query)
    assert page.status_code == 200
    return browser.go("POST", "/login", data={
        "csrf_token": _csrf(page.text), **query, "username": username, "password": PASSWORD})


def _redeem(cluster: Cluster, node: str, code: str, verifier: str) -> dict[str, Any]:
    http = Browser(cluster).on(node)
    response = http.go("POST", "/token", auth=(cluster.facts["client_id"],
                                               cluster.facts["secret"]), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _verified_claims(cluster: Cluster, node: str, id_token: str) -> dict[str, Any]:
    keys = Browser(cluster).on(node).go("GET", "/jwks.json").json()
    claims = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256"]).claims
    assert claims["exp"] > time.time()
    assert claims["iss"] == cluster.env["SSO_ISSUER"]
    assert claims["aud"] == cluster.facts["client_id"]
    return dict(claims)


def test_a_code_authorized_on_one_node_is_redeemed_on_another(cluster: Cluster) -> None:
    browser = Browser(cluster).on("n1")
    params, verifier = _authorize_params(cluster)
    start = browser.go("GET", "/authorize", params=params)
    flow_id = parse_qs(urlsplit(start.headers["Location"]).query)["flow"][0]
    code = _follow_to_app(browser, _sign_in(browser, flow_id))

    tokens = _redeem(cluster, "n2", code, verifier)
    claims = _verified_claims(cluster, "n3", tokens["id_token"])
    assert claims["sub"] == cluster.facts["subject"] and claims["nonce"] == params["nonce"]
    userinfo = Browser(cluster).on("n3").go(
        "GET", "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == cluster.facts["subject"]
    # The code was single use across the cluster, not per node.
    again = Browser(cluster).on("n3").go(
        "POST", "/token", auth=(cluster.facts["client_id"], cluster.facts["secret"]),
        data={"grant_type": "authorization_code", "code": code,
              "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # The SSO session opened on n1 is known on n2: a second app visit skips the sign-in.
    params, _verifier = _authorize_params(cluster)
    second = browser.on("n2").go("GET", "/authorize", params=params)
    assert second.headers["Location"].startswith(REDIRECT_URI)


def _listen(browser: Browser, url: str, into: queue.Queue[tuple[str, Any]]) -> None:
    try:
        with browser.get(urljoin(browser.base, url), stream=True, timeout=GENEROUS) as response:
            into.put(("served_by", response.headers.get(SERVED_BY)))
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    into.put(("state", json.loads(line[6:])["state"]))
    except requests.RequestException as error:
        into.put(("error", repr(error)))
    into.put(("closed", None))


def _next(events: queue.Queue[tuple[str, Any]], kind: str) -> Any:
    while True:
        got, value = events.get(timeout=GENEROUS)
        if got == kind:
            return value
        assert got != "error", value


def test_a_desktop_waiting_on_node_1_is_approved_through_node_3(cluster: Cluster) -> None:
    desktop = Browser(cluster).on("n1")
    params, verifier = _authorize_params(cluster)
    start = desktop.go("GET", "/authorize", params=params)
    assert "/login" in start.headers["Location"], start.headers["Location"]
    flow_id = parse_qs(urlsplit(start.headers["Location"]).query)["flow"][0]
    page = desktop.go("GET", "/qr/login", params={"flow": flow_id})
    csrf = _csrf(page.text)
    made = desktop.go("POST", "/qr/sessions", data={"flow": flow_id},
                      headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    code = made.json()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=_listen, args=(desktop, code["events_url"], events),
                     daemon=True).start()
    assert _next(events, "served_by") == "n1"
    assert _next(events, "state") == "pending"

    phone = Browser(cluster).on("n3")
    assert _sign_in(phone).status_code == 302
    confirm = phone.go("GET", f"/qr/s/{code['id']}")
    assert confirm.status_code == 200 and "ERP" in confirm.text
    assert _next(events, "state") == "scanned"
    approve = phone.go("POST", f"/qr/s/{code['id']}/approve",
                       data={"csrf_token": _csrf(confirm.text)})
    assert approve.status_code == 200, approve.text[:300]
    assert _next(events, "state") == "approved"

    # The desktop shows who approved and continues on a click (DESIGN.md §4).
    who = desktop.go("POST", code["complete_url"], data={"flow": flow_id, "csrf_token": csrf})
    assert who.status_code == 200 and "Signed in as Alice (alice)" in who.text
    done = desktop.go("POST", code["complete_url"], data={
        "flow": flow_id, "csrf_token": _csrf(who.text), "decision": "continue"})
    auth_code = _follow_to_app(desktop, done)
    claims = _verified_claims(cluster, "n1", _redeem(cluster, "n2", auth_code,
                                                     verifier)["id_token"])
    assert claims["sub"] == cluster.facts["subject"] and claims["amr"] == ["qr"]


def _service_token(cluster: Cluster, node: str) -> str:
    response = Browser(cluster).on(node).go(
        "POST", "/token", auth=(cluster.facts["client_id"], cluster.facts["secret"]),
        data={"grant_type": "client_credentials", "scope": "api"})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _kid(token: str) -> str:
    header = token.split(".")[0]
    import base64

    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def test_a_key_rotated_through_node_2_is_served_by_all(cluster: Cluster) -> None:
    before = _kid(_service_token(cluster, "n1"))
    sso(cluster.env, "keys", "rotate")  # the admin's command, with node 2's settings

    def every_node_signs_with_the_new_key() -> bool:
        kids = {name: _kid(_service_token(cluster, name)) for name in cluster.nodes}
        published = [{k["kid"] for k in Browser(cluster).on(name).go(
            "GET", "/jwks.json").json()["keys"]} for name in cluster.nodes]
        new = set(kids.values())
        return (len(new) == 1 and before not in new
                and all(new <= kids_of and before in kids_of for kids_of in published))

    wait_until(every_node_signs_with_the_new_key, GENEROUS,
               "every node signs with the rotated key and publishes both", interval=0.5)


def test_health_probes_stay_out_of_the_access_log(cluster: Cluster) -> None:
    # HAProxy has polled /readyz on every node twice a second since the start.
    _service_token(cluster, "n1")
    log = cluster.nodes["n1"].access_log
    wait_until(lambda: "/token" in log.read_text(), GENEROUS, "the access log has /token")
    text = log.read_text()
    assert "/readyz" not in text and "/healthz" not in text
    assert requests.get(f"{cluster.nodes['n1'].url}/readyz", timeout=5).json()["status"] == \
        "ready"


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None
    served_by: str | None
    client: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200


def test_a_revocation_reaches_the_token_statuses_every_node_keeps(cluster: Cluster) -> None:
    """The nodes keep introspection's token statuses (``SSO_INTROSPECTION_CACHE``, set for the
    cluster). A token revoked through one node is inactive there at once and on the others
    at their next check of the generation, a second later; so is a token of a user disabled
    by an ``sso`` command run without the setting. KEPT_AT_MOST is well under the 30 s a
    node keeps a status it was not told about, and far above the second it should take."""
    auth = (cluster.facts["client_id"], cluster.facts["secret"])

    def active(node: str, token: str) -> bool:
        response = Browser(cluster).on(node).go("POST", "/introspect", auth=auth,
                                                data={"token": token})
        assert response.status_code == 200, response.text
        return bool(response.json()["active"])

    def inactive_everywhere(token: str) -> float:
        started = time.monotonic()
        for node in cluster.nodes:
            wait_until(lambda node=node: not active(node, token), KEPT_AT_MOST,
                       f"{node} answers that the token is inactive")
        return time.monotonic() - started

    own = Browser(cluster).on("n1").go("POST", "/token", auth=auth, data={
        "grant_type": "client_credentials", "scope": "api"}).json()["access_token"]
    assert all(active(node, own) for node in cluster.nodes)  # now kept by every node
    assert Browser(cluster).on("n2").go("POST", "/revoke", auth=auth,
                                        data={"token": own}).status_code == 200
    assert not active("n2", own)
    revoked_in = inactive_everywhere(own)

    sso(cluster.env, "users", "create", "--username", "dora", "--password", PASSWORD)
    browser = Browser(cluster).on("n3")
    params, verifier = _authorize_params(cluster)
    start = browser.go("GET", "/authorize", params=params)
    flow_id = parse_qs(urlsplit(start.headers["Location"]).query)["flow"][0]
    code = _follow_to_app(browser, _sign_in(browser, flow_id, username="dora"))
    access = _redeem(cluster, "n3", code, verifier)["access_token"]
    assert all(active(node, access) for node in cluster.nodes)
    without_the_setting = {name: value for name, value in cluster.env.items()
                           if name != "SSO_INTROSPECTION_CACHE"}
    sso(without_the_setting, "users", "disable", "dora")
    disabled_in = inactive_everywhere(access)
    print(f"inactive on every node {revoked_in:.2f} s after the revocation, "
          f"{disabled_in:.2f} s after the user was disabled")


def test_a_node_killed_under_traffic_fails_only_its_requests_in_flight(
        cluster: Cluster) -> None:
    outcomes: list[Outcome] = []
    stop = threading.Event()
    clients = 6

    def traffic(client: int) -> None:
        http = requests.Session()
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = http.post(
                    f"{cluster.balancer.url}/token", timeout=GENEROUS,
                    auth=(cluster.facts["client_id"], cluster.facts["secret"]),
                    data={"grant_type": "client_credentials", "scope": "api"})
                outcome = Outcome(started, time.monotonic(), response.status_code,
                                  response.headers.get(SERVED_BY), client)
            except requests.RequestException as error:
                outcome = Outcome(started, time.monotonic(), None, repr(error), client)
            outcomes.append(outcome)

    threads = [threading.Thread(target=traffic, args=(client,), daemon=True)
               for client in range(clients)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: sum(o.served_by == "n2" for o in list(outcomes)) >= 10, GENEROUS,
                   "n2 serves its share")
        killed_at = time.monotonic()
        cluster.nodes["n2"].kill()
        dead_at = time.monotonic()
        cluster.balancer.wait_states({"n2": "DOWN", "n1": "UP", "n3": "UP"})
        down_at = time.monotonic()
        count = len(outcomes)
        wait_until(lambda: len(outcomes) >= count + 50, GENEROUS, "traffic goes on")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=GENEROUS)

    failed = [o for o in outcomes if not o.ok]
    # Only requests that were under way when n2 died may fail, and they fail as HAProxy's
    # 502 or a closed connection, not as an error of a live node. "Under way" includes a
    # request sent a moment after the kill that HAProxy had already handed to n2's socket
    # (the kernel resets it once the process is gone): SETTLE seconds. Each failure spends
    # either a request that was on n2 when it died (at most one per client) or one that HAProxy
    # put on an idle keep-alive connection to n2 whose end it had not read yet (it then closes
    # the client's connection without an answer, so that the client may retry; it held at
    # most one such connection per client), so at most two per client in all.
    for outcome in failed:
        assert outcome.started <= dead_at + SETTLE and outcome.ended >= killed_at, outcome
        assert outcome.status in (None, 502, 503), outcome
    assert len(failed) <= 2 * clients, failed
    after = [o for o in outcomes if o.started > down_at]
    assert after and all(o.ok for o in after)
    assert {o.served_by for o in after} == {"n1", "n3"}
    print(f"requests: {len(outcomes)}, failed (in flight on the killed node): {len(failed)}, "
          f"taken out by the health check after {down_at - killed_at:.2f} s")
