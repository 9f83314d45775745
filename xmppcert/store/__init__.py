# -*- test-case-name: tests.test_store -*-
"""
Where accounts, their credentials and their client certificates are stored.
"""

from xmppcert.store.interfaces import (
    CERTIFICATE_STATES,
    CERTIFICATE_TRANSITIONS,
    MAX_CERTIFICATE_NAME,
    SCRAM_MECHANISMS,
    AccountExists,
    AuditEntry,
    CertificateExists,
    CertificateLimitReached,
    CertificateRevoked,
    IAccountStore,
    IAuditLog,
    ICertificateStore,
    NoSuchAccount,
    NoSuchCertificate,
    ScramCredential,
    StoredCertificate,
    StoreError,
    checkCertificateName,
    checkCertificateState,
    checkFingerprint,
    checkTransition,
)
from xmppcert.store.sqlite import (
    SCHEMA_VERSION,
    SchemaVersionError,
    SQLiteDatabase,
    SQLiteStore,
)

__all__ = [
    "CERTIFICATE_STATES",
    "CERTIFICATE_TRANSITIONS",
    "MAX_CERTIFICATE_NAME",
    "SCHEMA_VERSION",
    "SCRAM_MECHANISMS",
    "AccountExists",
    "AuditEntry",
    "CertificateExists",
    "CertificateLimitReached",
    "CertificateRevoked",
    "IAccountStore",
    "IAuditLog",
    "ICertificateStore",
    "NoSuchAccount",
    "NoSuchCertificate",
    "SQLiteDatabase",
    "SQLiteStore",
    "SchemaVersionError",
    "ScramCredential",
    "StoreError",
    "StoredCertificate",
    "checkCertificateName",
    "checkCertificateState",
    "checkFingerprint",
    "checkTransition",
]
