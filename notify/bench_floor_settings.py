"""Settings of `make bench`'s web servers: the platform's, with notify.bench_floor's URLs added
after the platform's own (nothing else differs)."""

from notify.settings import *  # noqa: F403

ROOT_URLCONF = "notify.bench_floor"
