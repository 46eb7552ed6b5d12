from django.urls import path

from tracker import profile_views, security_views, views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("sync/", views.sync_status, name="sync"),
    path("sync/<slug:slug>/refs/", views.sync_refs, name="sync-refs"),
    path("security/", security_views.security_matrix, name="security"),
    path("security.csv", security_views.security_csv, name="security-csv"),
    path("security/<str:cve>/", security_views.cve_detail, name="cve"),
    path("security/<str:cve>/triage", security_views.cve_triage, name="cve-triage"),
    path("lookup/", security_views.lookup_page, name="lookup"),
    path("profile/", profile_views.profile, name="profile"),
    path("forks/<slug:slug>/", views.fork_detail, name="fork"),
    path("forks/<slug:slug>/trends.json", views.fork_trends, name="fork-trends"),
    path(
        "forks/<slug:slug>/security.json",
        views.fork_security_trends,
        name="fork-security-trends",
    ),
    path("forks/<slug:slug>/branches/<path:branch>/", views.branch_detail, name="branch"),
]
