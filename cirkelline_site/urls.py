"""The site's routes: the admin, the pages (chat.web), the API (chat.api); JSON for Django's error pages."""

from django.contrib import admin
from django.urls import include, path

from chat.identity.forms import ThrottledAdminLoginForm
from chat.observability import views as observability

# The admin's login says when the failed-login throttle refuses it (chat.identity.forms).
admin.site.login_form = ThrottledAdminLoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", observability.metrics, name="metrics"),  # Prometheus (staff session or bearer token)
    path("ready", observability.ready, name="ready"),  # readiness: database and Redis
    path("", include("chat.web.urls")),  # the pages: /, /c/<session>, /login/, /logout/
    path("", include("chat.api.urls")),
]

# API clients get JSON, not HTML error pages.
handler400 = "chat.api.errors.bad_request"
handler403 = "chat.api.errors.forbidden"
handler404 = "chat.api.errors.not_found"
handler500 = "chat.api.errors.server_error"
