"""Errors raised by the template engine (all subclasses of TemplateRenderError)."""

from __future__ import annotations


class TemplateRenderError(Exception):
    """A template failed to compile or render (the legacy gateway's `50000 system error`)."""


class TemplateSecurityError(TemplateRenderError):
    """The template tried to reach something the sandbox does not expose."""


class TemplateLimitError(TemplateRenderError):
    """The template exceeded a render budget: counted steps, loop iterations, the size of a
    value or of the output, the work of building values, nesting depth or regex time."""


class TemplateSyntaxError(TemplateRenderError):
    """The template text does not parse; `lineno` is 1-based when known."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        self.message = message
        self.lineno = lineno
        super().__init__(f"line {lineno}: {message}" if lineno else message)
