"""Recipient masking for logs, admin lists and legacy answers (SPEC: status.do)."""


def mask_email(address: str) -> str:
    local, sep, domain = address.partition("@")
    if not sep:
        return mask_opaque(address)
    return f"{local[:1]}***@{domain}"


def mask_mobile(mobile: str) -> str:
    if len(mobile) < 8:
        return mask_opaque(mobile)
    return f"{mobile[:3]}****{mobile[-4:]}"


def mask_opaque(value: str) -> str:
    return value[:2] + "***" if len(value) > 2 else "***"


def mask_recipient(channel: str, recipient: str) -> str:
    if channel == "email":
        return mask_email(recipient)
    if channel == "sms":
        return mask_mobile(recipient)
    return mask_opaque(recipient)
