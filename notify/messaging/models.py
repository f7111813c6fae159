from django.db import models
from django.db.models import Q
from django.utils import timezone

from notify.channels import registry
from notify.tenants.crypto import EncryptedTextField
from notify.tenants.models import Tenant
from notify.tenants.scoping import AllTenantsManager, TenantScopedManager

# the channels of the registry (notify/channels/registry.py), where each is declared
Channel = models.TextChoices(
    "Channel", [(spec.name.upper(), (spec.name, spec.label)) for spec in registry.all_channels()]
)


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    # every attempt allowed failed temporarily: kept for an operator's (or the tenant's) retry
    DEAD = "dead", "Dead"
    # not sent: the recipient is on the tenant's suppression list, or opted out of it
    SUPPRESSED = "suppressed", "Suppressed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.FAILED,
        MessageStatus.DEAD,
        MessageStatus.CANCELLED,
        MessageStatus.SUPPRESSED,
    }
)
# what a retry may start again from
RETRYABLE_STATUSES = frozenset({MessageStatus.DEAD, MessageStatus.FAILED})


class Origin(models.TextChoices):
    V2 = "v2", "API v2"
    LEGACY = "legacy", "Legacy API"


class SendRequest(models.Model):
    """One request to send (v2 or legacy), as its caller made it: the idempotency key it
    carried, the fingerprint of its body, and the first answer it got, replayed to a retry of
    the same request until `expires_at`. Its messages point back to it."""

    class State(models.TextChoices):
        PROCESSING = "processing", "Processing"
        COMPLETED = "completed", "Completed"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="send_requests")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.V2)
    endpoint = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROCESSING)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "endpoint", "idempotency_key"],
                name="send_request_unique_key_per_endpoint",
            )
        ]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.endpoint} {self.idempotency_key}"


class Priority(models.IntegerChoices):
    """Among a lane's due messages, a higher priority is sent first (the transactional lane;
    a batch's messages take their tenant's turn in the bulk lane, oldest first)."""

    LOW = 0, "low"
    NORMAL = 1, "normal"
    HIGH = 2, "high"


class Lane(models.TextChoices):
    """Transactional traffic (codes, receipts) and bulk traffic (batches, campaigns) wait in
    separate queues, served by separate worker pools: a campaign never delays a code."""

    TRANSACTIONAL = "transactional", "Transactional"
    BULK = "bulk", "Bulk"


class Message(models.Model):
    """One message to one recipient. Its id has the legacy 18-digit shape (see ids.py)."""

    id = models.CharField(primary_key=True, max_length=18, editable=False)
    # (indexed with created_at, below: a second index on the tenant alone only costs inserts)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="messages", db_index=False
    )
    batch_id = models.CharField(max_length=18, blank=True, default="")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    # as long as any channel's recipient may be (a push token: 4,096)
    recipient = models.CharField(max_length=4096)
    subject = models.TextField(blank=True, default="")
    body = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    params = models.JSONField(default=dict, blank=True)
    # (no index of its own: the states that are scanned have partial indexes below)
    status = models.CharField(
        max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    error = models.TextField(blank=True, default="")
    # the provider's own code for the last failure (a carrier's `UNDELIV`, an SMTP `550`)
    error_code = models.CharField(max_length=64, blank=True, default="")
    # the caller's own reference for the message (the legacy API's `out_id`)
    # (a legacy out_id, stored by compat.native.key_to_db: up to twice its 64 characters)
    reference = models.CharField(max_length=128, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    # `attempts` when the message was last retried by hand: each retry allows a new round
    attempts_before_retry = models.PositiveIntegerField(default=0)
    send_request = models.ForeignKey(
        SendRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.V2)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    lane = models.CharField(max_length=16, choices=Lane.choices, default=Lane.TRANSACTIONAL)
    # what the message is about, for recipients' preferences ("" : none given)
    category = models.CharField(max_length=64, blank=True, default="")
    # a message the recipient must get (a verification code): preferences do not stop it
    critical = models.BooleanField(default=False)
    # (defaults in the database too: code from before these columns still inserts rows; and no
    # CHECK constraint, whose validation would scan the table under an exclusive lock)
    priority = models.SmallIntegerField(
        choices=Priority.choices, default=Priority.NORMAL, db_default=Priority.NORMAL
    )
    # the caller's labels (GET /v2/messages?tag=) and its own data, answered back as given
    tags = models.JSONField(default=list, blank=True, db_default=[])
    metadata = models.JSONField(default=dict, blank=True, db_default={})
    # When the caller asked it to be sent (None: at once)
    send_at = models.DateTimeField(null=True, blank=True)
    # When the next attempt may start (now, a retry's backoff); the sweep publishes due rows.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A queued row is published (a broker wake-up) again from then on if no worker claimed it:
    # a publish that failed, or a queue the broker lost, delays a message, never loses it.
    republish_at = models.DateTimeField(null=True, blank=True)
    # A row in `sending` whose worker died is queued again once its lease is over.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at"]
        # Every index costs each insert (an accept, a batch of 10,000) and each status change;
        # only the scans that happen have one, and the partial ones hold only their rows.
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            # a batch's messages (single messages, the most, have none: not in this index)
            models.Index(fields=["batch_id"], condition=~Q(batch_id=""), name="message_batch"),
            # the sweep's two scans, each over the few rows in that state
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="queued"),
                name="message_queued_due",
            ),
            # the bulk lane's turns: the next tenant with due work, then its oldest rows
            models.Index(
                fields=["lane", "tenant", "next_attempt_at"],
                condition=Q(status="queued"),
                name="message_queued_lane_tenant",
            ),
            # a woken transactional worker takes the lane's due messages in this order, highest
            # priority first, reading only as far as the rows it takes
            models.Index(
                fields=["-priority", "next_attempt_at", "id"],
                condition=Q(status="queued", lane="transactional"),
                name="message_queued_tx_priority",
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="sending"),
                name="message_sending_lease",
            ),
            # the follow-up sweep (followups.py): each holds only finished rows that can owe a
            # follow-up, by when they finished (an entry written by the final status's own
            # UPDATE, which `status`'s index already keeps from being a HOT update: no extra
            # statement on the delivery path). Webhook events and legacy reports: read per
            # tenant, only for the tenants with a subscription or a callback_url
            models.Index(
                fields=["tenant", "updated_at"],
                condition=Q(status__in=["cancelled", "dead", "delivered", "failed", "suppressed"]),
                name="message_finished_tenant",
            ),
            # inbox items: the delivered in-app messages
            models.Index(
                fields=["updated_at"],
                condition=Q(status="delivered", channel="inapp"),
                name="message_inapp_delivered",
            ),
            # fallbacks: only the failed messages whose fallback is not claimed yet (claiming it
            # removes the `fallback` key, and the row from this index)
            models.Index(
                fields=["updated_at"],
                condition=Q(status__in=["dead", "failed"], params__has_key="fallback"),
                name="message_fallback_owed",
            ),
        ]

    def __str__(self) -> str:
        return self.id


def due_by(now) -> Q:  # noqa: ANN001 - a datetime
    """Messages whose next attempt may start at `now` (a queued row without a time is due)."""
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


class AttemptOutcome(models.TextChoices):
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    TEMPORARY_FAILURE = "temporary_failure", "Temporary failure"
    PERMANENT_FAILURE = "permanent_failure", "Permanent failure"
    # the worker stopped before it recorded anything (its lease expired)
    ABANDONED = "abandoned", "Abandoned"


class DeliveryAttempt(models.Model):
    """One try at handing a message to its provider: when, through what, how it ended."""

    # (indexed by the unique (message, number) below: an index of its own only costs writes)
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="delivery_attempts", db_index=False
    )
    number = models.PositiveIntegerField()
    # the provider configuration used (the channels issue adds them; blank until then)
    provider = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=24, choices=AttemptOutcome.choices, default=AttemptOutcome.SENDING
    )
    error_kind = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # the provider's own error code, as it gave it
    error_code = models.CharField(max_length=64, blank=True, default="")
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    # the HTTP status of the provider's answer (null: none, e.g. SMTP, or no answer)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["message", "number"]
        constraints = [
            models.UniqueConstraint(fields=["message", "number"], name="attempt_number_per_message")
        ]
        indexes = [
            # delivery reports find their attempt by the provider's id
            models.Index(
                fields=["provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="attempt_provider_message_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.message_id} #{self.number} {self.outcome}"


class MessageEvent(models.Model):
    """The message's timeline: every status change, with when and why."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.message_id} {self.status}"


class IdCounter(models.Model):
    """Shared ID counter for databases without sequences (SQLite); PostgreSQL uses a SEQUENCE."""

    name = models.CharField(primary_key=True, max_length=32)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Suppression(models.Model):
    """A recipient the tenant must not send to on a channel (a hard bounce, a complaint, a
    request): honoured at send time, critical messages included."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="suppressions")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipient = models.CharField(max_length=4096)
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "recipient"], name="suppression_once_per_recipient"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.recipient}"


class Preference(models.Model):
    """A recipient's opt-out of a channel, for one category or (category "") all of them:
    honoured at send time, except for critical messages."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="preferences")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipient = models.CharField(max_length=4096)
    category = models.CharField(max_length=64, blank=True, default="")
    opted_out = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "recipient", "category"],
                name="preference_once_per_recipient_category",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.recipient}:{self.category or '*'}"


class WebhookSubscription(models.Model):
    """A tenant's endpoint for its message events, signed per the Standard Webhooks spec with
    a secret shown once (at creation) and kept encrypted. Disabled by the platform after
    WEBHOOK_DISABLE_AFTER_FAILURES deliveries in a row gave up."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    # event types (notify.messaging.webhooks.EVENT_TYPES); empty: all of them
    events = models.JSONField(default=list, blank=True)
    description = models.CharField(max_length=200, blank=True, default="")
    secret = EncryptedTextField()
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    failed_in_a_row = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["tenant_id", "id"]

    def __str__(self) -> str:
        return f"{self.tenant_id} → {self.url}"


class WebhookDelivery(models.Model):
    """One event owed to one subscription: the pending work (the row, not the broker), its
    tries and how they ended: the subscription's delivery log."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Gave up"

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    # the Standard Webhooks `webhook-id`: the same for every try (receivers deduplicate on it)
    event_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="webhook_delivery_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} {self.state}"


class InboxItem(models.Model):
    """A delivered in-app message in its recipient's inbox, read or not."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    recipient = models.CharField(max_length=255)
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="inbox_item")
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "recipient", "-created_at", "-id"], name="inbox_page"),
            models.Index(
                fields=["tenant", "recipient"],
                condition=Q(read_at__isnull=True),
                name="inbox_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.message_id}"


class EarlyReceipt(models.Model):
    """A provider's report that arrived before the platform recorded the send it reports on
    (the provider answered, then reported, faster than the worker committed): kept, and
    applied by the beat once the attempt is recorded, so a fast report is never lost. Dropped
    after NOTIFY_EARLY_RECEIPT_TTL seconds (a report of a message no one sent); at most
    MAX_EARLY_PER_PROVIDER kept per provider, so one provider cannot crowd out the others."""

    channel = models.CharField(max_length=16)
    # the tenant's provider that reported, by name (blank: the platform's own)
    provider = models.CharField(max_length=64, blank=True, default="")
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE)
    provider_message_id = models.CharField(max_length=255)
    # "delivered", "failed" or "suppress"
    status = models.CharField(max_length=16)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error = models.CharField(max_length=1000, blank=True, default="")
    bad_recipient = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # when the beat looks for its send again (backing off while it matches nothing)
    next_check_at = models.DateTimeField(default=timezone.now, db_index=True)
    checks = models.PositiveSmallIntegerField(default=0)

    # (no tenant's view: only the beat reads them, for every tenant)
    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "provider", "channel"])]

    def __str__(self) -> str:
        return f"{self.channel} report {self.provider_message_id[:32]}: {self.status}"


class AttachmentBlob(models.Model):
    """An email attachment's bytes, once per tenant and content (a campaign's attachment is
    stored once for all its recipients); a message's params name it by digest. Deleted by the
    sweep once `keep_until` is past: NOTIFY_ATTACHMENT_RETENTION_DAYS after the latest
    message naming it was due (attachments are invoices and contracts: not kept forever)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)
    digest = models.CharField(max_length=64)  # SHA-256, hex
    content = models.BinaryField()
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    keep_until = models.DateTimeField(db_index=True)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "digest"], name="attachment_once_per_tenant")
        ]

    def __str__(self) -> str:
        return f"attachment {self.digest[:12]} ({self.size} bytes)"
