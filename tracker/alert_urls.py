from django.urls import path

from tracker import alert_views

urlpatterns = [
    path("", alert_views.alert_list, name="alerts"),
    path("subscribe", alert_views.alert_subscribe, name="alert-subscribe"),
    path("<int:pk>/", alert_views.alert_detail, name="alert"),
    path("<int:pk>/acknowledge", alert_views.alert_acknowledge, name="alert-ack"),
    path("<int:pk>/snooze", alert_views.alert_snooze, name="alert-snooze"),
    path("feed/<slug:slug>/<str:token>.atom", alert_views.alert_feed, name="alert-feed"),
]
