"""Every model module, imported so that ``db.metadata`` (and Alembic) sees all tables."""

from .accounts import models as accounts_models  # noqa: F401
from .apps import models as apps_models  # noqa: F401
from .audit import AuditEvent  # noqa: F401
from .mfa import models as mfa_models  # noqa: F401
from .oidc import keystore as oidc_keystore  # noqa: F401
from .oidc import models as oidc_models  # noqa: F401
from .outbox import OutboxMessage  # noqa: F401
from .sessions import models as sessions_models  # noqa: F401
from .users import models as users_models  # noqa: F401
