"""Views for /v2/templates: CRUD for templates and versions, render preview, Velocity conversion."""

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notify.api.errors import ErrorOutput, error_body
from notify.api.serializers import StrictSerializer
from notify.api.validation import DataField, LocaleField, canonical_locale
from notify.channels import registry
from templates_store import selectors, services
from templates_store.engines import ENGINE_KINDS, JINJA2, VELOCITY
from templates_store.models import Template, TemplateChannel, TemplateVersion
from templates_store.sandbox.errors import (
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
)
from templates_store.velocity.converter import MAX_SOURCE_CHARS, convert

MAX_SAMPLES = services.MAX_VERIFICATION_SAMPLES


def render_error_code(exc: TemplateRenderError) -> str:
    if isinstance(exc, TemplateSecurityError):
        return "template_security_error"
    if isinstance(exc, TemplateLimitError):
        return "template_limit_exceeded"
    return "render_error"


def _error_answer(description: str) -> OpenApiResponse:
    """An error answer of one operation, documented in the API's error shape."""
    return OpenApiResponse(ErrorOutput, description=description)


def render_error_response(exc: TemplateRenderError) -> Response:
    return Response(
        error_body(render_error_code(exc), str(exc)),
        status=status.HTTP_422_UNPROCESSABLE_ENTITY,
    )


def source_field(**kwargs: object) -> serializers.CharField:
    return serializers.CharField(
        max_length=MAX_SOURCE_CHARS, trim_whitespace=False, allow_blank=True, **kwargs
    )


def engine_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(ENGINE_KINDS),
        required=False,
        default=JINJA2,
        help_text="`jinja2`: sandboxed Jinja. `velocity`: legacy Velocity, converted by the "
        "platform (both sources and the conversion report are stored).",
    )


def samples_field() -> serializers.ListField:
    return serializers.ListField(
        child=DataField(),
        required=False,
        default=list,
        max_length=MAX_SAMPLES,
        help_text="With `engine: velocity`: parameter sets the conversion is verified on "
        "(rendered by the legacy engine and the platform; a version publishes only when "
        "every one renders the same).",
    )


def check_sources(attrs: dict, autoescape: bool) -> None:
    """Jinja sources compile in the tenant environment (compiling runs nothing of them)."""
    errors = {}
    for field in ("subject", "body"):
        try:
            services.check_source(attrs.get(field, ""), autoescape, JINJA2)
        except TemplateRenderError as exc:
            errors[field] = [str(exc)]
        except RecursionError:
            errors[field] = ["The template is nested too deeply."]
    if errors:
        raise ValidationError(errors)


def version_fields(attrs: dict, channel: str, autoescape: bool) -> dict:
    """The new version's fields: Jinja checked as it is, Velocity converted (and verified on
    the samples); a source that cannot be used is a 400 naming the field."""
    if attrs.get("engine", JINJA2) == VELOCITY:
        try:
            fields = services.convert_velocity(
                subject=attrs.get("subject", ""),
                body=attrs["body"],
                channel=channel,
                samples=attrs.get("samples") or [],
            )
        except (services.TemplateError, TemplateRenderError) as exc:
            raise ValidationError({"body": [str(exc)]}) from exc
        except RecursionError:
            raise ValidationError({"body": ["The template is nested too deeply."]}) from None
        errors = {}
        for field in ("subject", "body"):
            try:
                services.check_source(fields[field], False, VELOCITY)
            except TemplateRenderError as exc:
                errors[field] = [f"the converted template does not compile: {exc}"]
        if errors:
            raise ValidationError(errors)
        return fields
    check_sources(attrs, autoescape)
    return {"subject": attrs.get("subject", ""), "body": attrs["body"]}


STATUS_REFUSED = OpenApiResponse(
    ErrorOutput,
    description="`status_change_not_allowed`: `approved` needs the operator's grant of "
    "self-approval to the tenant; `rejected`, and leaving it, are the operator's alone.",
)


def status_refused_response(exc: services.StatusChangeNotAllowed) -> Response:
    return Response(error_body(exc.code, str(exc)), status=status.HTTP_403_FORBIDDEN)


def get_template_or_404(request: Request, key: str) -> Template:
    template = selectors.get_template(request.user, key)
    if template is None:
        raise NotFound("Template not found.")
    return template


class VersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    locale = serializers.CharField()
    subject = serializers.CharField()
    body = serializers.CharField()
    engine = serializers.CharField()
    legacy_subject = serializers.CharField()
    legacy_body = serializers.CharField()
    published = serializers.BooleanField()
    published_at = serializers.DateTimeField(allow_null=True)
    conversion_status = serializers.CharField()
    conversion_report = serializers.JSONField()
    verified_cases = serializers.IntegerField()
    mismatches = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by_label")
    created_at = serializers.DateTimeField()


class TemplateOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    channel = serializers.CharField()
    params = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    autoescape = serializers.BooleanField()
    legacy_tpl_id = serializers.CharField()
    published_versions = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_published_versions(self, template: Template) -> dict[str, int]:
        return {v.locale: v.number for v in template.versions.all() if v.published}


RESERVED_KEYS = {"convert"}


def _not_reserved(key: str) -> None:
    if key in RESERVED_KEYS:
        raise serializers.ValidationError(f"'{key}' is reserved.")


class TemplateListCreate(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "TemplateListCreateInput"

        key = serializers.SlugField(max_length=100, validators=[_not_reserved])
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        channel = serializers.ChoiceField(choices=TemplateChannel.choices)
        params = serializers.ListField(
            child=serializers.CharField(max_length=100), required=False, default=list
        )
        subject = source_field(required=False, default="")
        body = source_field()
        locale = LocaleField()
        autoescape = serializers.BooleanField(required=False, allow_null=True, default=None)
        engine = engine_field()
        samples = samples_field()
        status = serializers.ChoiceField(
            choices=Template.Status.choices, required=False, default=Template.Status.DRAFT
        )

    @extend_schema(responses={200: TemplateOutput(many=True)}, summary="List templates")
    def get(self, request: Request) -> Response:
        templates = selectors.list_templates(request.user).prefetch_related("versions")
        return Response(TemplateOutput(templates, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: TemplateOutput, 403: STATUS_REFUSED},
        summary="Create",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        try:
            services.check_status_by_tenant(request.user, Template.Status.DRAFT, fields["status"])
        except services.StatusChangeNotAllowed as exc:
            return status_refused_response(exc)
        autoescape = fields["autoescape"]
        if autoescape is None:
            autoescape = registry.get(fields["channel"]).html_bodies
        if selectors.get_template(request.user, fields["key"]) is not None:
            raise ValidationError({"key": ["A template with this key exists."]})
        version = version_fields(fields, fields["channel"], autoescape)
        velocity = fields["engine"] == VELOCITY
        try:
            with transaction.atomic():
                template = services.create_template(
                    tenant=request.user,
                    key=fields["key"],
                    name=fields["name"],
                    channel=fields["channel"],
                    params=fields["params"],
                    subject=version["subject"],
                    body=version["body"],
                    locale=fields["locale"],
                    autoescape=autoescape,
                    status=fields["status"],
                    actor="api",
                    conversion=version if velocity else None,
                )
        except IntegrityError:
            raise ValidationError({"key": ["A template with this key exists."]}) from None
        return Response(TemplateOutput(template).data, status=status.HTTP_201_CREATED)


class TemplateDetail(APIView):
    class UpdateSerializer(StrictSerializer):
        class Meta:
            ref_name = "TemplateDetailUpdate"

        name = serializers.CharField(max_length=200, required=False)
        params = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
        status = serializers.ChoiceField(choices=Template.Status.choices, required=False)
        autoescape = serializers.BooleanField(required=False)

    @extend_schema(responses={200: TemplateOutput}, summary="A template")
    def get(self, request: Request, key: str) -> Response:
        return Response(TemplateOutput(get_template_or_404(request, key)).data)

    @extend_schema(
        request=UpdateSerializer,
        responses={200: TemplateOutput, 403: STATUS_REFUSED},
        summary="Update",
    )
    def patch(self, request: Request, key: str) -> Response:
        template = get_template_or_404(request, key)
        serializer = self.UpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = serializer.validated_data
        if "status" in changes:
            try:
                services.check_status_by_tenant(request.user, template.status, changes["status"])
            except services.StatusChangeNotAllowed as exc:
                return status_refused_response(exc)
        if (
            "autoescape" in changes
            and changes["autoescape"] != template.autoescape
            and template.versions.exclude(conversion_status="").exists()
        ):
            # Escaping would change the output the legacy conversion was verified to keep.
            raise ValidationError(
                {"autoescape": ["Converted legacy templates render without escaping."]}
            )
        escaping_changes = changes.get("autoescape", template.autoescape) != template.autoescape
        with transaction.atomic():
            for field, value in changes.items():
                setattr(template, field, value)
            template.save()
            # After the save: a `"status": "approved"` in the same request cannot undo it.
            if escaping_changes:
                services.withdraw_approval_on_tenant_change(template, request.user)
        return Response(TemplateOutput(template).data)

    @extend_schema(responses={204: None}, summary="Delete a template and its versions")
    def delete(self, request: Request, key: str) -> Response:
        get_template_or_404(request, key).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionListCreate(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "VersionListCreateInput"

        subject = source_field(required=False, default="")
        body = source_field()
        locale = LocaleField()
        publish = serializers.BooleanField(required=False, default=False)
        engine = engine_field()
        samples = samples_field()

    @extend_schema(responses={200: VersionOutput(many=True)}, summary="List versions")
    def get(self, request: Request, key: str) -> Response:
        template = get_template_or_404(request, key)
        return Response(VersionOutput(template.versions.all(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: VersionOutput}, summary="Add version")
    def post(self, request: Request, key: str) -> Response:
        template = get_template_or_404(request, key)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        version_data = version_fields(fields, template.channel, template.autoescape)
        with transaction.atomic():
            version = services.add_version(
                template,
                locale=fields["locale"],
                publish=fields["publish"],
                actor="api",
                **version_data,
            )
            if fields["publish"]:
                services.withdraw_approval_on_tenant_change(template, request.user)
        return Response(VersionOutput(version).data, status=status.HTTP_201_CREATED)


def get_version_or_404(template: Template, number: int, locale: str) -> TemplateVersion:
    try:
        locale = canonical_locale(locale)
    except ValidationError:
        raise NotFound("Version not found.") from None
    version = selectors.get_version(template, number, locale)
    if version is None:
        raise NotFound("Version not found.")
    return version


VERSION_LOCALE = OpenApiParameter(
    "locale",
    str,
    description="The version's locale (e.g. `zh-CN`); left out: the default locale's.",
)


class VersionDetail(APIView):
    @extend_schema(parameters=[VERSION_LOCALE], responses={200: VersionOutput}, summary="A version")
    def get(self, request: Request, key: str, number: int) -> Response:
        template = get_template_or_404(request, key)
        version = get_version_or_404(template, number, request.query_params.get("locale", ""))
        return Response(VersionOutput(version).data)

    @extend_schema(
        parameters=[VERSION_LOCALE],
        responses={204: None, 409: _error_answer("`conflict`: the version is published.")},
        summary="Delete a version that is not published",
    )
    def delete(self, request: Request, key: str, number: int) -> Response:
        template = get_template_or_404(request, key)
        version = get_version_or_404(template, number, request.query_params.get("locale", ""))
        if version.published:
            return Response(
                error_body("conflict", "A published version cannot be deleted."),
                status=status.HTTP_409_CONFLICT,
            )
        version.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionPublish(APIView):
    @extend_schema(
        request=None,
        parameters=[VERSION_LOCALE],
        responses={
            200: VersionOutput,
            409: _error_answer("`conflict`: the version cannot be published (the reason says)."),
        },
        summary="Publish a version",
    )
    def post(self, request: Request, key: str, number: int) -> Response:
        template = get_template_or_404(request, key)
        version = get_version_or_404(template, number, request.query_params.get("locale", ""))
        try:
            with transaction.atomic():
                services.publish_version(version, actor="api")
                services.withdraw_approval_on_tenant_change(template, request.user)
        except services.TemplateError as exc:
            return Response(error_body("conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(VersionOutput(version).data)


class TemplateRollback(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "TemplateRollbackInput"

        locale = LocaleField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: VersionOutput,
            409: _error_answer("`conflict`: there is no version to roll back to."),
        },
        summary="Roll back",
    )
    def post(self, request: Request, key: str) -> Response:
        template = get_template_or_404(request, key)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                version = services.rollback(template, **serializer.validated_data, actor="api")
                services.withdraw_approval_on_tenant_change(template, request.user)
        except services.TemplateError as exc:
            return Response(error_body("conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(VersionOutput(version).data)


class RenderOutput(serializers.Serializer):
    subject = serializers.CharField()
    body = serializers.CharField()
    version = serializers.IntegerField()
    locale = serializers.CharField()


class TemplateRender(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "TemplateRenderInput"

        data = DataField()
        locale = LocaleField()
        version = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: RenderOutput,
            409: _error_answer("`conflict`: no published version (or not the one asked for)."),
            422: _error_answer(
                "`render_error`, `template_limit_exceeded` or `template_security_error`: "
                "the template failed with this data."
            ),
        },
        summary="Preview",
    )
    def post(self, request: Request, key: str) -> Response:
        template = get_template_or_404(request, key)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        try:
            if "version" in fields:
                version = selectors.get_version(template, fields["version"], fields["locale"])
                if version is None:
                    raise NotFound("Version not found.")
                subject, body = services.render_version(
                    version, fields["data"], autoescape=template.autoescape
                )
            else:
                rendered = services.render_template(template, fields["data"], fields["locale"])
                version, subject, body = rendered.version, rendered.subject, rendered.body
        except services.TemplateError as exc:
            return Response(error_body("conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        except TemplateRenderError as exc:
            return render_error_response(exc)
        output = {
            "subject": subject,
            "body": body,
            "version": version.number,
            "locale": version.locale,
        }
        return Response(RenderOutput(output).data)


class TemplateConvert(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "TemplateConvertInput"

        # the converter's documented limit, checked before anything parses the source
        source = serializers.CharField(
            max_length=MAX_SOURCE_CHARS,
            trim_whitespace=False,
            error_messages={
                "max_length": "A Velocity source of at most {max_length:,} characters can be "
                "converted."
            },
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TemplateConvertOutput"

        jinja = serializers.CharField(allow_null=True)
        status = serializers.CharField()
        issues = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            422: _error_answer("`unprocessable`: the template is nested too deeply to convert."),
        },
        summary="Velocity to Jinja2",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            conversion = convert(serializer.validated_data["source"])
        except RecursionError:
            return Response(
                error_body("unprocessable", "The template is nested too deeply to convert."),
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        report = conversion.to_dict()
        return Response(
            {"jinja": conversion.source, "status": conversion.status, "issues": report["issues"]}
        )
