# -*- test-case-name: tests.test_store -*-
"""
Where accounts and their credentials are stored.
"""

from xmppcert.store.interfaces import (
    SCRAM_MECHANISMS,
    AccountExists,
    IAccountStore,
    NoSuchAccount,
    ScramCredential,
    StoreError,
)
from xmppcert.store.sqlite import (
    SCHEMA_VERSION,
    SchemaVersionError,
    SQLiteDatabase,
    SQLiteStore,
)

__all__ = [
    "SCHEMA_VERSION",
    "SCRAM_MECHANISMS",
    "AccountExists",
    "IAccountStore",
    "NoSuchAccount",
    "SQLiteDatabase",
    "SQLiteStore",
    "SchemaVersionError",
    "ScramCredential",
    "StoreError",
]
