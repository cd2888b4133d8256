"""Settings of the AWS side: clients, WAF and evidence limits, the SNS endpoint."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)

from remediator.settings.base import PositiveDuration, Section, is_loopback
from remediator.sources.aws.cloudwatch import InsufficientData
from remediator.sources.sns.certs import TrustPolicy
from remediator.sources.sns.envelope import parse_topic_arn


def _default_never_block() -> list[IPvAnyNetwork]:
    # Our own side of every connection: loopback, private and link-local ranges, carrier NAT.
    ranges = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
              "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"]
    return [ipaddress.ip_network(r) for r in ranges]


class WafSettings(Section):
    """Limits of `waf.block_ip`; `never_block` is re-checked inside the action after the guardrails."""

    never_block: list[IPvAnyNetwork] = Field(default_factory=_default_never_block)
    max_blocks_per_hour: int = Field(30, ge=0, description="addresses added per IP set per hour")
    max_set_size: int = Field(1000, ge=1, le=10_000, description="addresses an IP set may hold")
    lock_retries: int = Field(3, ge=0, le=10, description="re-reads after WAFOptimisticLockException")
    max_duration: PositiveDuration = timedelta(days=7)


class EvidenceSettings(Section):
    """Where `s3.preserve_evidence` copies to, and how much one run may copy."""

    bucket: str = ""  # empty: the action refuses (a forensics bucket is never taken from an alert)
    key_prefix: str = "incidents/"
    max_objects: int = Field(1000, ge=1)
    max_bytes: int = Field(5 * 1024**3, ge=1)


CacheNodeType = Annotated[str, Field(pattern=r"^cache\.[a-z0-9-]+\.[a-z0-9]+$")]


class ElastiCacheSettings(Section):
    """The node types `elasticache.scale_node_type` may choose, smallest first (a cost ceiling
    set by people: a policy may only move a group up this list, never off it)."""

    node_types: list[CacheNodeType] = []

    @field_validator("node_types")
    @classmethod
    def _distinct(cls, node_types: list[str]) -> list[str]:
        if len(set(node_types)) != len(node_types):
            raise ValueError("list each node type once")
        return node_types


class AwsSettings(Section):
    region: str = "us-east-1"
    endpoint_url: str | None = None
    max_attempts: int = Field(4, ge=1, le=10)
    connect_timeout: PositiveDuration = timedelta(seconds=3)
    read_timeout: PositiveDuration = timedelta(seconds=10)
    # One AWS call, botocore's own retries included; past it the call is abandoned as a timeout.
    call_timeout: PositiveDuration = timedelta(seconds=60)
    waf: WafSettings = WafSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    elasticache: ElastiCacheSettings = ElastiCacheSettings()


def _topic_arn(arn: str) -> str:
    parse_topic_arn(arn)  # a typo fails the start, naming its key, instead of refusing that topic quietly
    return arn


TopicArnSetting = Annotated[str, AfterValidator(_topic_arn)]


class SnsRawDelivery(Section):
    """A path for one topic's raw message delivery: no signature, so a shared secret instead.

    SNS sends the secret as basic auth from the subscription URL (`https://sns:<secret>@host/path`);
    other senders may use `Authorization: Bearer <secret>`.
    """

    path: str = Field(pattern=r"^/")
    topic_arn: TopicArnSetting
    secret: SecretStr
    username: str = Field("sns", min_length=1)

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (it is the only proof of origin)")
        return secret


class SnsSettings(Section):
    """The SNS endpoint: which topics it trusts, how it confirms subscriptions, where certificates come from."""

    path: str = Field("/webhooks/sns", pattern=r"^/")
    topics: list[TopicArnSetting] = []  # the allow-list; messages of any other topic get 403
    confirm_method: Literal["ConfirmSubscription", "SubscribeURL"] = "ConfirmSubscription"
    confirm_timeout: PositiveDuration = timedelta(seconds=5)
    insufficient_data: InsufficientData = InsufficientData.RECORD
    # SNS keeps the Timestamp of the first attempt and retries for up to an hour, plus backlog
    # (docs/wire-formats.md §2.5).
    max_age: PositiveDuration = timedelta(hours=2)
    certificate_timeout: PositiveDuration = timedelta(seconds=3)
    ca_files: list[Path] = []  # empty: the public SNS issuers (by name), over verified TLS
    mirror_url: str | None = None  # tests and air-gapped setups: fetch SNS URLs' paths from here
    raw_delivery: list[SnsRawDelivery] = []

    @field_validator("ca_files")
    @classmethod
    def _readable_ca_files(cls, files: list[Path]) -> list[Path]:
        for path in files:
            try:
                TrustPolicy.from_files([path])  # read again when the app starts
            except OSError as exc:
                raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
        return files

    @model_validator(mode="after")
    def _mirror_needs_a_ca(self) -> SnsSettings:
        # Issuer names prove nothing about a certificate fetched from a mirror: only TLS to the
        # real SNS host does. Over a network a mirror is therefore trusted through ca_files only.
        if self.mirror_url is not None and not self.ca_files and not _is_loopback_url(self.mirror_url):
            raise ValueError("mirror_url off loopback needs ca_files (the CA that issued the mirrored certificates)")
        return self

    @property
    def allowed_topics(self) -> frozenset[str]:
        """Topics whose signed messages are accepted: the allow-list and every raw-delivery topic."""
        return frozenset(self.topics) | {raw.topic_arn for raw in self.raw_delivery}


def _is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or is_loopback(host)


