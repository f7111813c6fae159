from django.urls import re_path

from compat.views import gateway

# every path under /gateway/ comes here: unknown ones get the old gateway's empty 404
urlpatterns = [re_path(r"^gateway/", gateway, name="legacy-gateway")]
