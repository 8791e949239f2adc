"""0.1.1's REST API location. The API is now the task-ferry-drf distribution
(``task_ferry_drf``); :mod:`task_ferry.api.urls` forwards to it with a
deprecation warning. Core itself never imports Django REST framework."""
