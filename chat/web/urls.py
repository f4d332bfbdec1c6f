"""The pages' routes: the chat (/ and /c/<session id>), login and logout, the API docs (/docs)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.chat, name="chat"),
    path("c/<str:session_id>", views.chat, name="chat-session"),
    path("login/", views.login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("docs", views.api_docs, name="api-docs"),
]
