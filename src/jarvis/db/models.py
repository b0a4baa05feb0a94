"""Every table's metadata in one place, for migrations and tests.

Importing this module imports each domain's models so that ``metadata`` is complete.
Only the migration environment and tests import it.
"""

from jarvis.agents import models as _agents  # noqa: F401
from jarvis.analytics import models as _analytics  # noqa: F401
from jarvis.audit import models as _audit  # noqa: F401
from jarvis.auth import models as _auth  # noqa: F401
from jarvis.config import models as _config  # noqa: F401
from jarvis.db.base import Base
from jarvis.orchestration import models as _orchestration  # noqa: F401
from jarvis.personas import models as _personas  # noqa: F401

metadata = Base.metadata
