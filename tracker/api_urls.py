from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from tracker import api

router = DefaultRouter()
router.register("upstreams", api.UpstreamViewSet, basename="upstream")
router.register("forks", api.ForkViewSet, basename="fork")
router.register("snapshots", api.SnapshotViewSet, basename="snapshot")
router.register("releases", api.ForkReleaseViewSet, basename="release")
router.register("vulnerabilities", api.VulnerabilityViewSet, basename="vulnerability")
router.register("fix-statuses", api.FixStatusViewSet, basename="fix-status")
router.register("alerts", api.AlertViewSet, basename="alert")
router.register("lookup", api.LookupViewSet, basename="lookup")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The schema browsable in Swagger UI, from the vendored copy (drf-spectacular-sidecar).
    # login_required: a browser without a session is sent to log in, not shown DRF's 403.
    path(
        "docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("", include(router.urls)),
]
