"""Browsers that signed in to an account, recognised by a long-lived device cookie.

A sign-in from a browser that has no device cookie, or one this account has not seen, is
from a *new device*: listeners registered with :func:`on_new_device` hear of it (the account
pages mail the user). The account's very first browser is not "new": there is nothing to
compare it with. The cookie holds a random token; only its SHA-256 is stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import func, select

from ..audit import Origin
from ..extensions import db
from ..security import hash_token, new_token
from ..users.models import User
from .models import SessionSettings, SSOSession, UserDevice

NewDeviceListener = Callable[[User, UserDevice, SSOSession, Origin], None]
_LISTENERS = "sso_new_device_listeners"


def on_new_device(app: Flask, listener: NewDeviceListener) -> None:
    """Call ``listener(user, device, session, origin)`` after a sign-in from a new browser."""
    listeners = app.extensions.setdefault(_LISTENERS, [])
    if listener not in listeners:
        listeners.append(listener)


def recognise(user: User, token: str | None, session: SSOSession, origin: Origin,
              now: datetime) -> str | None:
    """Note the browser ``user`` just signed in from; return a new cookie token to set, or
    None if the browser's token is fine as it is."""
    fresh = None
    if not token or len(token) > 128:
        token = fresh = new_token()
    device = db.session.scalars(select(UserDevice).where(
        UserDevice.user_id == user.id, UserDevice.token_hash == hash_token(token))).first()
    if device is not None:
        device.last_seen_at = now
        device.ip, device.user_agent = origin.ip, (origin.user_agent or "")[:255] or None
        session.device_id = device.id
        return fresh
    known = db.session.scalar(select(func.count()).select_from(UserDevice)
                              .where(UserDevice.user_id == user.id)) or 0
    device = UserDevice(user_id=user.id, token_hash=hash_token(token), first_seen_at=now,
                        last_seen_at=now, ip=origin.ip,
                        user_agent=(origin.user_agent or "")[:255] or None)
    db.session.add(device)
    db.session.flush()
    session.device_id = device.id
    if known:
        for listener in current_app.extensions.get(_LISTENERS, []):
            listener(user, device, session, origin)
    return fresh


def wants_alert(user_id: int) -> bool:
    settings = db.session.get(SessionSettings, user_id)
    return settings is None or bool(settings.new_device_alert)


def set_alert(user_id: int, enabled: bool) -> None:
    settings = db.session.get(SessionSettings, user_id)
    if settings is None:
        db.session.add(SessionSettings(user_id=user_id, new_device_alert=enabled))
    else:
        settings.new_device_alert = enabled


_BROWSERS = (("Edg/", "Edge"), ("MicroMessenger", "WeChat"), ("OPR/", "Opera"),
             ("Firefox/", "Firefox"), ("Chromium/", "Chromium"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))
_SYSTEMS = (("Windows", "Windows"), ("iPhone", "iOS"), ("iPad", "iOS"), ("Android", "Android"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))
_HEADLESS = re.compile(r"Headless", re.IGNORECASE)


def describe(user_agent: str | None) -> tuple[str, str]:
    """A person's words for a user agent: (browser, operating system); "" when unknown."""
    agent = user_agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in agent), "")
    if browser and _HEADLESS.search(agent):
        browser = f"{browser} (headless)"
    system = next((name for mark, name in _SYSTEMS if mark in agent), "")
    return browser, system
