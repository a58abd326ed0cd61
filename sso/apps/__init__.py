"""Per-app activation of users through the SSO, and the events that tell the apps about it.

DESIGN.md §3 step 4: on the first sign-in to each app, the app's activation policy
(``auto``, ``approval``, ``invite``) decides; each activation, approval, refusal and
revocation is pushed to the app as a signed Security Event Token. See docs/apps.md.
The step itself is a row of the step table (``sso.signin``).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import events  # noqa: PLC0415
    from .views import bp  # noqa: PLC0415

    events.register()
    app.register_blueprint(bp)
