"""Recipient masking for logs, admin lists and legacy answers (SPEC: status.do): each channel's
own masking, from the channel registry."""

from notify.channels.registry import mask_email, mask_mobile, mask_opaque, mask_recipient

__all__ = ["mask_email", "mask_mobile", "mask_opaque", "mask_recipient"]
