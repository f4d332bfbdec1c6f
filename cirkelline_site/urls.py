from django.contrib import admin
from django.urls import include, path

from chat.observability import views as observability

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", observability.metrics, name="metrics"),  # Prometheus (staff session or bearer token)
    path("ready", observability.ready, name="ready"),  # readiness: database and Redis
    path("", include("chat.web.urls")),  # the pages: /, /c/<session>, /login/, /logout/, /uploads
    path("", include("chat.urls")),
]

# API clients get JSON, not HTML error pages.
handler400 = "chat.views.bad_request"
handler403 = "chat.views.forbidden"
handler404 = "chat.views.not_found"
handler500 = "chat.views.server_error"
