"""The sign-in passage's one step table: what a signed-in browser may still owe before an app
gets a code, in the order it is asked (DESIGN.md §3).

Each step only decides (see :mod:`sso.flow`); the first one that owes a page wins, and the
effects of the decisions taken run once, after deciding. The order, and why:

1. ``identify``: nothing can be decided before someone has signed in (recently enough, as
   the user the app expects).
2. ``mfa``: the second factor comes before anything the first factor alone must not reach:
   an initial or expired password is replaced only by someone who also holds the second
   factor, and no app's name, consent page or account is shown to a half-proven user.
3. ``password_change``: an initial or expired password is replaced before any app gets in.
4. ``consent``: third-party apps ask the user before learning anything about them.
5. ``activation``: last, so that no app account is created and no event carrying the
   user's claims leaves before the user fully signed in and agreed (authentik's fulfilment
   stage, appended after every check, is the model).

Steps are skipped by each app's policy inside the step (a first-party app needs no consent,
an app without a second-factor policy no ``mfa`` for most users).

:data:`METHODS` lists the sign-in method packages: :func:`sso.create_app` calls each one's
``init_app``, which registers its pages and (with ``flow.register_method``) its tab. Adding a
method is one package and one line here (docs/architecture.md; ``sso/smscode`` is the
example).
"""

from __future__ import annotations

from .accounts.step import password_change_step
from .apps import step as apps_step
from .apps.service import status_read
from .flow import Step, identify
from .mfa import policy as mfa_policy
from .oidc.consent import consent_step

STEPS = (
    Step("identify", identify),
    Step(mfa_policy.STEP_NAME, mfa_policy.second_factor_step,
         reads=mfa_policy.stored_facts_read),
    Step("password_change", password_change_step),
    Step("consent", consent_step),
    Step(apps_step.STEP_NAME, apps_step.activation_step, reads=status_read),
)

#: The sign-in method packages, in the order their ``init_app`` runs (after the protocol's).
METHODS = (
    "sso.auth",
    "sso.apps",
    "sso.accounts",
    "sso.mfa",
    "sso.smscode",
)
