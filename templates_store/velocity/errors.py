"""The engine's errors live in templates_store.sandbox.errors (shared by both environments)."""

from templates_store.sandbox.errors import (
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

__all__ = [
    "TemplateLimitError",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
]
