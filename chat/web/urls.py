from django.contrib.auth import views as auth_views
from django.urls import path

from chat.ws.uploads import upload

from . import views

urlpatterns = [
    path("", views.chat, name="chat"),
    path("c/<str:session_id>", views.chat, name="chat-session"),
    path("login/", auth_views.LoginView.as_view(template_name="chat/login.html", redirect_authenticated_user=True),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("uploads", upload, name="uploads"),
]
