"""Message events other parts subscribe to (the legacy facade's delivery reports, tenant
webhooks). Sent after the change is committed, with ids only: a receiver re-reads what it needs
and must not fail the sender (it records its own work and returns)."""

from django.dispatch import Signal

# a message reached a final status (delivered, failed, dead, suppressed, cancelled)
# kwargs: message_id (str), status (str), origin (str), tenant_id (int) and channel (str), each
# None when the sender did not read it (a receiver that cares reads the message)
message_finished = Signal()
