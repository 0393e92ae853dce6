"""Lock managers for SERIALIZABLE transactions (``prefect.locking`` in Prefect).

Example:
    ``INPUTS.configure(isolation_level="SERIALIZABLE", lock_manager=MemoryLockManager())``
"""

from headwater.engine.locking import FileSystemLockManager, LockManager, MemoryLockManager

__all__ = ["FileSystemLockManager", "LockManager", "MemoryLockManager"]
