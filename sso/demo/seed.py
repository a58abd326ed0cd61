"""Seed the demo: an admin, three users and the ERP, CRM and inventory apps with their roles,
plus one invited user (``newhire``) and one who must change the initial password (``trainee``),
and two departments (groups ``finance`` and ``sales``) whose roles their members inherit.

Each app's sign-in policy is in its ``policy`` (ERP requires MFA and receives Security Event
Tokens, inventory activates accounts on approval). Seeded users are the company's existing
employees: in an app that does not activate everyone (``approval``, ``invite``), those with
roles there are provisioned, so their first sign-in activates their account.

Running it again changes nothing that is already there, except that each demo app's
registration (redirect URIs, scopes, ``policy``) is brought back in line with
:data:`DEMO_APPS`. The apps' client secrets are generated once and kept in the instance folder
(git-ignored), so the demo apps keep working across restarts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..accounts import lifecycle
from ..accounts import service as accounts
from ..apps import service as app_accounts
from ..extensions import db
from ..oidc import clients
from ..oidc.models import Client
from ..security import hash_token, new_token, same
from ..users import groups
from ..users import service as users
from ..users.models import User

DEMO_PASSWORD = "Demo-SSO-2024"
SECRETS_FILE = "demo-client-secrets.json"
SCOPE = "openid profile email phone offline_access roles"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"

#: Where the demo ERP receives Security Event Tokens (``sso.demo.app``, EVENTS_PATH).
ERP_EVENTS_ENDPOINT = "http://127.0.0.1:5001/sso/events"

#: The demo apps. ``policy`` sets the client's sign-in policy columns (e.g.
#: ``mfa_required`` or ``activation``): change a demo app's policy here, then rerun the seed.
DEMO_APPS: list[dict[str, Any]] = [
    {
        "name": "ERP", "name_zh": "企业资源计划", "client_id": "erp", "port": 5001,
        "accent": "#1f5fbf",
        "roles": {"accountant": "Posts journal entries", "approver": "Approves purchases"},
        "policy": {"mfa_required": True, "events_endpoint": ERP_EVENTS_ENDPOINT},
        "logout": "back",
    },
    {
        "name": "CRM", "name_zh": "客户关系管理", "client_id": "crm", "port": 5002,
        "accent": "#0f7b6c",
        "roles": {"sales-rep": "Works leads and deals", "sales-manager": "Owns the pipeline"},
        "policy": {},
        "logout": "front",
        # Also a CIBA client (poll mode): its call-centre page signs a caller in by phone.
        "ciba": "poll",
    },
    {
        "name": "Inventory", "name_zh": "库存管理", "client_id": "inventory", "port": 5003,
        "accent": "#9a5b13",
        "roles": {"clerk": "Books goods in and out", "auditor": "Counts and reconciles stock"},
        "policy": {"activation": "approval"},
        "logout": "back",
    },
]

#: The demo users and their roles per app (client_id -> role names); each has a different mix.
DEMO_USERS: list[dict[str, Any]] = [
    {"username": "admin", "name": "Demo Admin", "email": "admin@example.com", "admin": True,
     "phone": None,
     "roles": {"erp": ["approver"], "crm": ["sales-manager"], "inventory": ["auditor"]}},
    {"username": "alice", "name": "Alice", "email": "alice@example.com", "admin": False,
     "phone": "+8613800000001",
     "roles": {"erp": ["accountant", "approver"], "crm": ["sales-rep"]}},
    {"username": "sales", "name": "Sales Demo", "email": "sales@example.com", "admin": False,
     "phone": None,
     "roles": {"crm": ["sales-rep", "sales-manager"], "inventory": ["auditor"]}},
    {"username": "warehouse", "name": "Warehouse Demo", "email": "warehouse@example.com",
     "admin": False, "phone": None,
     "roles": {"inventory": ["clerk"], "erp": ["accountant"]}},
]

#: Users who show the account lifecycle: ``newhire`` is invited by email (the activation link
#: waits in the development outbox, /dev/outbox); ``trainee`` has the demo password as an
#: initial password and must change it at the first sign-in.
LIFECYCLE_USERS: list[dict[str, Any]] = [
    {"username": "newhire", "name": "New Hire", "email": "newhire@example.com",
     "invited": True, "roles": {"erp": ["accountant"]},
     "shows": "invited: open the activation link at /dev/outbox, set a password"},
    {"username": "trainee", "name": "Trainee", "email": "trainee@example.com",
     "invited": False, "roles": {"crm": ["sales-rep"]},
     "shows": "must change the initial password at the first sign-in"},
]


#: Departments: their members inherit the group's roles. Every member already holds these
#: roles directly, so the groups change nothing the demo users can do; they show the console's
#: Groups pages and the "inherited from group" roles on a user's page.
DEMO_GROUPS: list[dict[str, Any]] = [
    {"name": "finance", "display_name": "Finance", "description": "Accounting and purchasing",
     "roles": {"erp": ["accountant"]}, "members": ["alice", "warehouse"]},
    {"name": "sales", "display_name": "Sales", "description": "Leads, deals and customers",
     "roles": {"crm": ["sales-rep"]}, "members": ["alice", "sales"]},
]


def base_url(demo_app: dict[str, Any], host: str = "127.0.0.1") -> str:
    return f"http://{host}:{demo_app['port']}"


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_secrets(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh, indent=2, sort_keys=True)
    temporary.replace(path)


def _seed_app(demo_app: dict[str, Any], known_secret: str | None) -> str:
    """Register or update one demo app; return its client secret."""
    url = base_url(demo_app)
    redirect_uris = [f"{url}/callback"]
    logout_uris = [f"{url}/"]
    # A CIBA app (``"ciba": "poll"``) also has the CIBA grant and its delivery mode.
    grant_types = ["authorization_code", "refresh_token",
                   *([CIBA_GRANT] if demo_app.get("ciba") else [])]
    policy = {**_checked_policy(demo_app["policy"]), "ciba_mode": demo_app.get("ciba")}
    client = clients.get(demo_app["client_id"])
    if client is None:
        client, secret = clients.create_client(
            demo_app["name"], redirect_uris, post_logout_redirect_uris=logout_uris,
            grant_types=grant_types, scope=SCOPE,
            first_party=True, client_id=demo_app["client_id"], policy=policy,
        )
        assert secret is not None  # noqa: S101 - a confidential client always has one
    else:
        client.redirect_uris = redirect_uris
        client.post_logout_redirect_uris = logout_uris
        if list(client.grant_types or []) != grant_types:
            client.grant_types = grant_types
        clients.update_policy(client, **policy)
        if known_secret and client.secret_hash and same(hash_token(known_secret),
                                                        client.secret_hash):
            secret = known_secret
        else:
            # The stored secret was lost (instance folder wiped): issue a new one.
            secret = new_token(clients.SECRET_PREFIX)
            client.secret_hash = hash_token(secret)
    # Each demo app's Chinese name, and its logo as the app itself serves it (sso.demo.app).
    client.name_zh = demo_app.get("name_zh")
    client.logo_uri = f"{url}/logo.svg"
    # Single logout (sso.demo.logout): ERP and inventory by back channel, CRM by front channel.
    from .logout import BACKCHANNEL_PATH, FRONTCHANNEL_PATH  # noqa: PLC0415

    channel = demo_app.get("logout")
    clients.set_logout(
        client,
        backchannel_logout_uri=f"{url}{BACKCHANNEL_PATH}" if channel == "back" else "",
        frontchannel_logout_uri=f"{url}{FRONTCHANNEL_PATH}" if channel == "front" else "")
    for role, description in demo_app["roles"].items():
        users.define_role(demo_app["client_id"], role, description)
    return secret


#: A demo app's policy columns when its entry in :data:`DEMO_APPS` does not name them.
DEFAULT_POLICY: dict[str, Any] = {
    "activation": "auto", "mfa_required": False, "remember_device": True,
    "qr_number_matching": False, "events_endpoint": None,
}


def _checked_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """The app's whole sign-in policy as :data:`DEMO_APPS` states it, validated by sso.apps
    (an empty events endpoint removes it)."""
    return app_accounts.checked_policy({**DEFAULT_POLICY, **policy})


def _seed_user(spec: dict[str, Any]) -> User:
    user = users.find_by_login(spec["username"])
    if user is None:
        user = accounts.create_user(
            spec["username"], email=spec["email"], phone=spec["phone"], name=spec["name"],
            password=DEMO_PASSWORD, is_admin=spec["admin"],
        )
    return user


def _seed_lifecycle_user(spec: dict[str, Any]) -> User:
    user = users.find_by_login(spec["username"])
    if user is None and spec["invited"]:
        user, _channel = lifecycle.invite(spec["username"], email=spec["email"],
                                          name=spec["name"], actor="demo seed")
    elif user is None:
        user = accounts.create_user(spec["username"], email=spec["email"], name=spec["name"],
                                    password=DEMO_PASSWORD, must_change=True)
    return user


def _grant_roles(user: User, roles: dict[str, list[str]],
                 apps_by_id: dict[str, Client | None]) -> None:
    """Grant the roles; in an app that does not activate everyone, provision the user too."""
    for client_id, names in roles.items():
        for name in names:
            users.grant_role(user, client_id, name)
        client = apps_by_id[client_id]
        if client is not None and (app_accounts.policy_of(client) != app_accounts.AUTO
                and app_accounts.find(user.id, client_id) is None):
            app_accounts.provision(user, client, actor="demo seed")


def _seed_group(spec: dict[str, Any], seeded: dict[str, Client | None]) -> None:
    group = groups.find(spec["name"]) or groups.create(
        spec["name"], display_name=spec["display_name"], description=spec["description"])
    for client_id, names in spec["roles"].items():
        if seeded.get(client_id) is None:
            continue
        for name in names:
            role = users.find_role(client_id, name)
            if role is not None:
                groups.grant(group, role)
    for username in spec["members"]:
        member = users.find_by_login(username)
        if member is not None:
            groups.add_member(group, member)


def seed(instance_path: str, apps: list[dict[str, Any]] | None = None,
         users: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Create what is missing and commit; return each demo app's client secret by client_id.

    Call inside an app context. ``apps`` and ``users`` default to :data:`DEMO_APPS` and
    :data:`DEMO_USERS` (tests pass apps on free ports).
    """
    path = Path(instance_path) / SECRETS_FILE
    known = _read_secrets(path)
    secrets = {}
    for demo_app in apps if apps is not None else DEMO_APPS:
        secrets[demo_app["client_id"]] = _seed_app(demo_app, known.get(demo_app["client_id"]))
    seeded = {a["client_id"]: clients.get(a["client_id"])
              for a in (apps if apps is not None else DEMO_APPS)}
    for spec in users if users is not None else DEMO_USERS:
        user = _seed_user(spec)
        _grant_roles(user, {k: v for k, v in spec["roles"].items() if k in seeded}, seeded)
    if users is None:
        for spec in LIFECYCLE_USERS:
            user = _seed_lifecycle_user(spec)
            _grant_roles(user, {k: v for k, v in spec["roles"].items() if k in seeded}, seeded)
        for group_spec in DEMO_GROUPS:
            _seed_group(group_spec, seeded)
    db.session.commit()
    if secrets != {k: known.get(k) for k in secrets}:
        _write_secrets(path, {**known, **secrets})
    return secrets
