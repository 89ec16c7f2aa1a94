"""The pieces of the run DAGs in ``dags/`` (``lclstream_on_run_start``, ``lclstream_on_run_stop``,
``lclstream_manual``): their settings (Airflow Variables), the plan of each run's streaming, and what
happened (the annotation posted to the run).

They live in the installed provider rather than beside the DAG files so that the dag-processor, the
workers and the tests import the same code, and the DAG files stay a short description of the flow.
Nothing here talks to a service at import time; ``flow.py`` builds the tasks the DAG files share.
"""
