from django.urls import path

from tracker import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("sync/", views.sync_status, name="sync"),
    path("forks/<slug:slug>/", views.fork_detail, name="fork"),
    path("forks/<slug:slug>/trends.json", views.fork_trends, name="fork-trends"),
    path("forks/<slug:slug>/branches/<path:branch>/", views.branch_detail, name="branch"),
]
