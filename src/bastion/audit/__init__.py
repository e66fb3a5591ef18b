"""The tamper-evident audit log (AD-1..AD-3): typed records, hash chain, signed checkpoints.

``AuditLog`` takes records on the request path and writes them in batches to SQLite;
``verify`` checks a database with only the public key; ``Redactor`` masks secrets.
"""

from bastion.audit.log import AuditLog, AuditUnavailable
from bastion.audit.read import export_jsonl
from bastion.audit.record import AuditRecord, canonical_bytes
from bastion.audit.redact import Redactor, redact_text
from bastion.audit.store import AuditStore, AuditStoreError
from bastion.audit.verify import Problem, VerifyReport, verify

__all__ = [
    "AuditLog",
    "AuditRecord",
    "AuditStore",
    "AuditStoreError",
    "AuditUnavailable",
    "Problem",
    "Redactor",
    "VerifyReport",
    "canonical_bytes",
    "export_jsonl",
    "redact_text",
    "verify",
]
