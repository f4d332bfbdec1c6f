"""The API's routes: AgentOS runs, sessions and teams; the token routes; uploads; usage; the profile and
memories; the user's documents (AgentOS' knowledge routes); feedback on answers; the OpenAPI document."""

from django.urls import path

from . import feedback, knowledge, memories, profile, tokens, usage, views
from .limits import API, accepts

urlpatterns = [
    path("api/token/", accepts(API)(tokens.LoginView.as_view()), name="token_obtain_pair"),
    path("api/token/refresh/", accepts(API)(tokens.RefreshView.as_view()), name="token_refresh"),
    path("api/token/logout/", accepts(API)(tokens.LogoutView.as_view()), name="token_logout"),
    path("health", views.health, name="health"),
    path("config", views.config, name="config"),
    path("teams", views.teams, name="teams"),
    path("teams/<str:team_id>", views.team_detail, name="team-detail"),
    path("teams/<str:team_id>/runs", views.create_run, name="team-runs"),
    path("teams/<str:team_id>/runs/<str:run_id>", views.run_detail, name="team-run"),
    path("teams/<str:team_id>/runs/<str:run_id>/cancel", views.cancel_run, name="team-run-cancel"),
    path("teams/<str:team_id>/runs/<str:run_id>/continue", views.continue_run, name="team-run-continue"),
    path("teams/<str:team_id>/runs/<str:run_id>/resume", views.resume_run, name="team-run-resume"),
    path("sessions", views.sessions, name="sessions"),
    path("sessions/<str:session_id>", views.session_detail, name="session"),
    path("sessions/<str:session_id>/runs", views.session_runs, name="session-runs"),
    path("sessions/<str:session_id>/rename", views.rename_session, name="session-rename"),
    path("sessions/<str:session_id>/feedback", feedback.session_feedback, name="session-feedback"),
    path("runs/<str:run_id>/feedback", feedback.run_feedback, name="run-feedback"),
    path("uploads", views.upload, name="uploads"),
    path("usage", usage.usage, name="usage"),
    path("profile", profile.profile, name="profile"),
    path("memories", memories.memories, name="memories"),
    path("memories/<str:memory_id>", memories.memory_detail, name="memory"),
    path("memory_topics", memories.memory_topics, name="memory-topics"),
    path("user_memory_stats", memories.user_memory_stats, name="user-memory-stats"),
    path("knowledge/content", knowledge.contents, name="knowledge-contents"),
    path("knowledge/content/<str:content_id>", knowledge.content_detail, name="knowledge-content"),
    path("knowledge/content/<str:content_id>/status", knowledge.content_status, name="knowledge-content-status"),
    path("knowledge/search", knowledge.search, name="knowledge-search"),
    path("openapi.json", views.openapi_json, name="openapi"),
]
