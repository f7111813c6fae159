#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notify.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads the settings, which check the secrets
    except ImproperlyConfigured as exc:
        # A configuration mistake, not a crash: one line that says what to set, no traceback.
        sys.exit(f"notify: refusing to start: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
