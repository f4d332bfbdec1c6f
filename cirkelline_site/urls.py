"""The site's routes: the admin, the pages (chat.web), the API (chat.api); JSON for Django's error pages."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("chat.web.urls")),  # the pages: /, /c/<session>, /login/, /logout/
    path("", include("chat.api.urls")),
]

# API clients get JSON, not HTML error pages.
handler400 = "chat.api.errors.bad_request"
handler403 = "chat.api.errors.forbidden"
handler404 = "chat.api.errors.not_found"
handler500 = "chat.api.errors.server_error"
