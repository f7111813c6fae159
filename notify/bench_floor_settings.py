"""Settings of `make bench`'s web servers: the platform's, with notify.bench_floor's URLs added
after the platform's own and its legacy floor beside the legacy API's middleware (nothing else
differs)."""

from notify.settings import *  # noqa: F403
from notify.settings import MIDDLEWARE as PLATFORM_MIDDLEWARE

ROOT_URLCONF = "notify.bench_floor"
_LEGACY = PLATFORM_MIDDLEWARE.index("compat.middleware.LegacyGatewayMiddleware")
MIDDLEWARE = [
    *PLATFORM_MIDDLEWARE[:_LEGACY],
    "notify.bench_floor.LegacyFloorMiddleware",
    *PLATFORM_MIDDLEWARE[_LEGACY:],
]
