"""Transactions (``prefect.transactions`` in Prefect): commit or roll back work together.

Example:
    ``with transaction(key="daily-load") as txn: ...`` (``async with`` in async code)
"""

from headwater.engine.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    get_transaction,
    transaction,
)

__all__ = [
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
    "get_transaction",
    "transaction",
]
