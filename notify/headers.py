"""What a header-bound value (a mail subject, a recipient address, an idempotency key) may not
contain, in one place for the API, the legacy facade and the transports.

Refused: every C0 control (tab and line breaks included), DEL, every C1 control (NEL among
them), lone surrogates, and U+2028/U+2029. Together these are every character that
`str.splitlines()`, and with it the email library's header folding, treats as a line break, so
none can cut a header in two or smuggle in another one; surrogates cannot even be encoded.

In Unicode terms these are the categories Cc, Cs, Zl and Zp. Everything else is allowed: a
narrower allowlist of categories would refuse real subjects (emoji sequences joined by U+200D
and right-to-left marks are format characters, Cf; emoji newer than Python's Unicode tables are
unassigned, Cn)."""

import re

HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def header_problem(value: str) -> str | None:
    """Why `value` cannot go into a header, or None when it can."""
    match = HEADER_UNSAFE.search(value)
    if match is None:
        return None
    return (
        "Must not contain control characters, line separators or lone surrogates "
        f"(U+{ord(match.group()):04X} at position {match.start() + 1})."
    )


def header_text(value: str) -> str:
    """`value` made header-safe: each character header_problem refuses becomes a space."""
    return HEADER_UNSAFE.sub(" ", value)
