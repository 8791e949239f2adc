pytest_plugins = ["task_ferry.testing.fixtures"]
