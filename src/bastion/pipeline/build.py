"""The stage list of a gateway's pipeline, from its configuration: audit (outermost,
records in ``finally``), the principal's rate limit, authorize, the tool/global rate limits
and concurrency caps, validate, sanitise; the route to the MCP layer is the innermost
handler. Built once, at start-up. This is the issue's order except that the per-principal
bucket is charged before authorize, so requests the policy denies are rate-limited too
(DS-3; see ``pipeline.ratelimit``)."""

from __future__ import annotations

from collections.abc import Callable

from bastion.audit.log import AuditLog
from bastion.audit.redact import Redactor
from bastion.config.model import Config
from bastion.config.secrets import configured_secrets
from bastion.guard.sanitise import Sanitiser
from bastion.guard.schemas import SchemaValidator
from bastion.guard.uris import UriPolicy
from bastion.limits import ConcurrencyLimiter, RateLimiter
from bastion.pipeline.approvals import ApprovalGate
from bastion.pipeline.audit_stage import AuditStage
from bastion.pipeline.authorize import AuthorizeStage
from bastion.pipeline.inflight import InFlightCalls
from bastion.pipeline.listens import OpenListens
from bastion.pipeline.ratelimit import PrincipalRateStage, RateLimitStage
from bastion.pipeline.sanitise import SanitiseStage
from bastion.pipeline.stage import Stage
from bastion.pipeline.tool_schemas import ToolSchemas
from bastion.pipeline.validate import ValidateStage
from bastion.policy.engine import Policy
from bastion.server.registry import ServerApp

__all__ = ["build_stages", "schema_validator"]


def schema_validator(config: Config) -> SchemaValidator:
    schemas = config.guard.schemas
    return SchemaValidator(
        reject_unknown_fields=schemas.reject_unknown_fields,
        max_schema_bytes=schemas.max_schema_bytes,
    )


def build_stages(
    config: Config,
    app: ServerApp,
    policy: Callable[[], Policy],
    approvals: ApprovalGate,
    log: AuditLog | None,
    *,
    listens: OpenListens | None = None,
    calls: InFlightCalls | None = None,
) -> list[Stage]:
    guard = config.guard
    stages: list[Stage] = []
    if log is not None:
        stages.append(AuditStage(log))
    rates = RateLimiter(config.limits)
    stages.append(PrincipalRateStage(rates))
    stages.append(AuthorizeStage(policy, approvals, listens=listens, calls=calls))
    stages.append(RateLimitStage(rates, ConcurrencyLimiter(config.limits)))
    schemas = ToolSchemas(schema_validator(config)) if guard.schemas.enabled else None
    uris = UriPolicy(schemes=guard.uris.allowed_schemes(), file_roots=guard.uris.file_roots)
    stages.append(ValidateStage(app, schemas, uris))
    known = configured_secrets(config)
    sanitiser = None
    if guard.sanitise.enabled:
        options = guard.sanitise
        sanitiser = Sanitiser(
            redactor=Redactor(config.audit.redact_fields),
            mask_secrets=options.mask_secrets,
            pii_patterns=options.pii_patterns,
            strip_invisible=options.strip_invisible,
            max_chars=options.max_result_chars,
            injection_action=options.injection_action,
            known_secrets=known,
            remote_images=options.remote_images,
            image_hosts=options.image_hosts,
        )
    output = schemas if guard.schemas.validate_output else None
    # Errors and relays are cleaned even with result filtering off; so are our credentials,
    # and so are images whose URL could carry data out (under the configured image hosts).
    always = sanitiser or Sanitiser(
        known_secrets=known,
        remote_images=guard.sanitise.remote_images,
        image_hosts=guard.sanitise.image_hosts,
    )
    stages.append(SanitiseStage(app, sanitiser, output, always=always))
    return stages
