"""Column mixins shared by several tables."""

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from jarvis.kit.clock import utcnow


class Timestamps:
    """``created_at`` and ``updated_at``, maintained by the ORM."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
