"""`manage.py rollout status` and `manage.py rollout stage <app_key|--batch NAME|--all> <stage>
[--percent N] --reason TEXT`: the admin's rollout actions from a shell (same gates, same audit
log)."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notify.rollout import selectors, services
from notify.rollout.models import RolloutBatch
from notify.tenants.models import Tenant

STAGES = [*Tenant.Stage.values, "next", "resume"]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


class Command(BaseCommand):
    help = "Shows the rollout, or moves tenants between stages (audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="every batch and tenant with its stage and health")
        status.add_argument("--batch", help="only this batch")
        stage = sub.add_parser("stage", help="move tenants to a stage")
        stage.add_argument("app_key", nargs="?", help="the tenant's legacy app_key")
        stage.add_argument("stage", choices=STAGES)
        stage.add_argument("--batch", help="every tenant of this batch")
        stage.add_argument("--all", action="store_true", help="every tenant with an app_key")
        stage.add_argument("--percent", type=int, help="canary: the platform's share, 1-100")
        stage.add_argument("--reason", required=True, help="why (written to the audit log)")
        stage.add_argument(
            "--override", action="store_true", help="go ahead where a gate says no (audited)"
        )
        stage.add_argument("--actor", default="", help="who (default: the shell user)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "status":
            self._status(options.get("batch"))
        else:
            self._stage(options)

    def _status(self, batch_name: str | None) -> None:
        batches = RolloutBatch.objects.all()
        if batch_name:
            batches = batches.filter(name=batch_name)
            if not batches:
                raise CommandError(f"no batch named {batch_name!r}")
        header = (
            f"{'tenant':<20} {'app_key':<20} {'stage':<8} {'%':>4} {'compared':>8} "
            f"{'match':>7} {'mismatch':>8} {'noise':>6} {'err old':>7} {'err new':>7} "
            f"{'p50 old':>7} {'p50 new':>7} {'p99 old':>7} {'p99 new':>7}"
        )
        groups = [(b, selectors.batch_tenants(b)) for b in batches]
        if not batch_name:
            loose = list(Tenant.objects.filter(rollout_batch__isnull=True, app_key__isnull=False))
            if loose:
                groups.append((None, loose))
        for batch, tenants in groups:
            if batch is None:
                self.stdout.write("(no batch)")
            else:
                stage = selectors.batch_stage(tenants)
                extra = (
                    f", complete since {batch.completed_at:%Y-%m-%d %H:%M}"
                    if (batch.completed_at)
                    else ""
                )
                self.stdout.write(
                    f"batch {batch.name}: {stage} ({batch.get_state_display()}{extra})"
                )
            self.stdout.write(header)
            for tenant in tenants:
                h = selectors.health(tenant)
                old, new = h.path("legacy"), h.path("new")
                stage = (
                    tenant.stage if tenant.stage != "paused" else f"paused({tenant.paused_stage})"
                )
                self.stdout.write(
                    f"{tenant.slug:<20} {tenant.app_key or '':<20} {stage:<8} "
                    f"{tenant.canary_percent:>4} {h.compared:>8} {_rate(h.match_rate):>7} "
                    f"{h.mismatches:>8} {h.noise:>6} {_rate(old['error_rate']):>7} "
                    f"{_rate(new['error_rate']):>7} {_ms(old['p50_ms']):>7} "
                    f"{_ms(new['p50_ms']):>7} {_ms(old['p99_ms']):>7} {_ms(new['p99_ms']):>7}"
                )

    def _stage(self, options: dict[str, Any]) -> None:
        batch = None
        chosen = [bool(options.get("app_key")), bool(options.get("batch")), options["all"]]
        if sum(chosen) != 1:
            raise CommandError("name exactly one of: an app_key, --batch NAME, --all")
        if options.get("batch"):
            batch = RolloutBatch.objects.filter(name=options["batch"]).first()
            if batch is None:
                raise CommandError(f"no batch named {options['batch']!r}")
            tenants = selectors.batch_tenants(batch)
        elif options["all"]:
            tenants = list(Tenant.objects.filter(app_key__isnull=False).exclude(app_key=""))
        else:
            tenants = list(Tenant.objects.filter(app_key=options["app_key"]))
            if not tenants:
                raise CommandError(f"no tenant with app_key {options['app_key']!r}")
        if not tenants:
            raise CommandError("no tenants to move")
        actor = options["actor"] or f"shell:{getpass.getuser()}"
        kwargs = {"actor": actor, "reason": options["reason"], "batch": batch}
        stage = options["stage"]
        try:
            if stage == "resume":
                paused = [t for t in tenants if t.stage == Tenant.Stage.PAUSED]
                if not paused:
                    raise CommandError("none of these tenants is paused")
                events = services.advance(paused, override=options["override"], **kwargs)
            elif stage == "next":
                events = services.advance(tenants, override=options["override"], **kwargs)
            elif stage == Tenant.Stage.CANARY:
                if options["percent"] is None:
                    raise CommandError("canary needs --percent N (1-100)")
                events = services.set_canary(
                    tenants, options["percent"], override=options["override"], **kwargs
                )
            elif stage == Tenant.Stage.PAUSED:
                events = services.pause(tenants, **kwargs)
            elif stage == Tenant.Stage.LEGACY:
                events = services.roll_back(tenants, override=options["override"], **kwargs)
            else:
                events = services.move(
                    tenants,
                    services.Target(stage),
                    override=options["override"],
                    **kwargs,
                )
        except services.RolloutError as exc:
            raise CommandError(str(exc)) from exc
        for event in events:
            percent = f" {event.to_percent}%" if event.to_stage == "canary" else ""
            flag = " (gates overridden)" if event.override else ""
            self.stdout.write(
                f"{event.tenant_slug}: {event.from_stage} -> {event.to_stage}{percent}{flag}"
            )
