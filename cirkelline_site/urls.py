from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("chat.web.urls")),  # the pages: /, /c/<session>, /login/, /logout/, /uploads
    path("", include("chat.urls")),
]

# API clients get JSON, not HTML error pages.
handler400 = "chat.views.bad_request"
handler403 = "chat.views.forbidden"
handler404 = "chat.views.not_found"
handler500 = "chat.views.server_error"
