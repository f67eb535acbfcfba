"""Write Flask view decorators and callback registries once; they work on
``def`` and ``async def`` views alike.
"""

from __future__ import annotations

from .backends import is_async_path as is_async_path
from .bridges import ensure_async as ensure_async
from .bridges import ensure_sync as ensure_sync
from .bridges import is_async_callable as is_async_callable
from .bridges import maybe_await as maybe_await
from .callbacks import Callback as Callback
from .decorators import after_view as after_view
from .decorators import async_compatible_decorator as async_compatible_decorator
from .decorators import before_view as before_view
from .generators import drive_async as drive_async
from .generators import drive_sync as drive_sync
