"""Legacy Velocity (airspeed 0.7.1) templates on a sandboxed Jinja2 engine.

- `engine`: the Jinja2 engine (sandboxed, bounded) with the runtime helpers.
- `converter`: Velocity to Jinja conversion with a report of what needs review.
- `verifier`: renders both engines on cases and reports differences.
"""

from .converter import Conversion, Issue, convert
from .engine import CompiledTemplate, Engine, RenderLimits
from .errors import (
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

__all__ = [
    "CompiledTemplate",
    "Conversion",
    "Engine",
    "Issue",
    "RenderLimits",
    "TemplateLimitError",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "convert",
]
