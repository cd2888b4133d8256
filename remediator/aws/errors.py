"""AWS error codes sorted into the failure reasons the engine acts on (retry or not).

The tables hold the codes AWS documents per service; suffix rules catch the rest of a family
(`*NotFound*`, `*LimitExceeded`). Access denial is also recognised by HTTP 403 alone, because
json and cbor services answer some denials with a bare 403 whose code botocore reports as '403'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remediator.model import Execution, FailureReason

THROTTLING = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "SlowDown", "BandwidthLimitExceeded", "EC2ThrottledException", "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException", "APICallRateForCustomerExceeded",
    "TransactionInProgressException",
})
SERVER = frozenset({
    "InternalError", "InternalFailure", "InternalServerError", "InternalServiceError",
    "InternalException", "ServiceUnavailable", "ServiceUnavailableException", "ServerException",
    "WAFInternalErrorException", "Unavailable", "ServiceFailure",
})
ACCESS_DENIED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
    "AuthorizationError", "Forbidden", "403", "AllAccessDisabled", "InvalidClientTokenId",
    "UnrecognizedClientException", "SignatureDoesNotMatch", "AuthFailure", "InvalidAccessKeyId",
    "ExpiredToken", "ExpiredTokenException", "MissingAuthenticationToken",
})
# Someone else changed the resource between our read and our write: read again and retry.
CONFLICT_RETRYABLE = frozenset({
    "WAFOptimisticLockException", "ConcurrentModification", "OperationAbortedException",
    "OperationAborted",
})
VALIDATION = frozenset({
    "ValidationException", "ValidationError", "InvalidParameterValue", "InvalidParameterValueException",
    "InvalidParameterCombination", "InvalidParameterException", "InvalidParameter", "MissingParameter",
    "ClientException", "InvalidInput", "InvalidRequest", "InvalidArgument", "WAFInvalidParameterException",
    "MalformedXML", "InvalidChangeBatch", "UnsupportedOperation", "InvalidAction",
})
NOT_FOUND = frozenset({
    "WAFNonexistentItemException", "NoSuchBucket", "NoSuchKey", "NoSuchHostedZone", "ResourceNotFound",
    "ResourceNotFoundException", "NotFoundException", "NotFound", "InvalidInstanceID.NotFound",
    "InvalidVolume.NotFound", "InvalidGroup.NotFound", "ObjectLockConfigurationNotFoundError",
})
LIMIT = frozenset({"TestFailoverNotAvailableFault", "WAFLimitsExceededException", "TooManyRecords"})


@dataclass(frozen=True, slots=True)
class AwsFailure:
    """A classified AWS failure: the reason (a metric label), whether the engine may retry, and why."""

    reason: FailureReason
    retryable: bool
    message: str
    code: str = ""
    http_status: int | None = None
    retry_attempts: int | None = None

    def execution(self, **detail: Any) -> Execution:
        extra = {"code": self.code, "http_status": self.http_status, "retry_attempts": self.retry_attempts}
        extra = {k: v for k, v in extra.items() if v not in (None, "")}
        return Execution.failed(self.reason, self.message, retryable=self.retryable, **extra, **detail)


def _is_not_found(code: str) -> bool:
    return (code in NOT_FOUND or code.startswith("NoSuch") or code.endswith(".NotFound")
            or code.endswith(("NotFoundException", "NotFoundFault", "NotFound", "NotFoundError")))


def _reason(code: str, status: int | None) -> tuple[FailureReason, bool]:
    if code in THROTTLING or status == 429:
        return FailureReason.THROTTLED, True
    if code in ACCESS_DENIED or status == 403:
        return FailureReason.ACCESS_DENIED, False
    if code in CONFLICT_RETRYABLE:
        return FailureReason.CONFLICT, True
    if code in SERVER or (status is not None and status >= 500):
        return FailureReason.SERVER_ERROR, True
    if _is_not_found(code) or status == 404:
        return FailureReason.NOT_FOUND, False
    if code in LIMIT or code.endswith(("LimitExceeded", "LimitExceededException", "LimitExceededFault")) \
            or "QuotaExceeded" in code:
        return FailureReason.LIMIT_EXCEEDED, False
    if "State" in code or status == 409:
        # InvalidDBInstanceState, InvalidReplicationGroupState…: the resource is busy; a person
        # looks before anything retries it.
        return FailureReason.CONFLICT, False
    return FailureReason.VALIDATION, False


def classify_code(code: str, status: int | None, message: str, operation: str, *,
                  retry_attempts: int | None = None) -> AwsFailure:
    """Classify an AWS error answer by its code and HTTP status; `operation` is "service:Operation"."""
    reason, retryable = _reason(code, status)
    shown = code or str(status or "")
    if reason is FailureReason.ACCESS_DENIED:
        text = f"access denied: {operation} ({shown})"
    elif reason is FailureReason.THROTTLED:
        text = f"{operation}: throttled by AWS ({shown})"
    else:
        text = f"{operation}: {shown}: {message[:300]}" if message else f"{operation}: {shown}"
    return AwsFailure(reason, retryable, text, code, status, retry_attempts)
