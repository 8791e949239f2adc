from demo_app.views import index
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", index, name="demo-index"),
    path("api/jobs/", include("task_ferry_drf.urls")),
    path("admin/", admin.site.urls),
]
