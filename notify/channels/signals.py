"""What the channels tell the rest of the platform."""

from django.dispatch import Signal

# A tenant's provider got a new name: sender=Provider, provider=the row (already saved under
# it), old_name=its previous name. Sent inside the transaction that renamed it, so what a
# receiver writes commits, or not, with the rename.
provider_renamed = Signal()
