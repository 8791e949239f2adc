"""A minimal job-type app that works unchanged with task-ferry-core and with
django-task-ferry 0.1.1: both keep the same ``Job`` / ``JobType`` / registry API."""
