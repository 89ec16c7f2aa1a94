"""`lclstream_on_run_stop`: a run stops at the beamline; make sure it was streamed, and note the result.

Fired by the facility's `run_stop` events on Kafka (the asset `lclstream_run_stops`; LCLS's eLog
`Update` with an `end_time` counts too). For each run among them, the same task group as
`lclstream_on_run_start` asks LCLStream-API for the run's transfer with the same idempotency key:

* if `lclstream_on_run_start` made it (the run's start fired it), this DAG run starts no consumer: it
  waits for that transfer to finish and notes on the run how the transfer ended;
* if there is none (the run's start was missed, e.g. while Airflow was down), this request makes it and
  the now-closed run is streamed from its files into a consumer job like a live one, so no run is left
  behind, and the run is annotated with what was delivered.
"""

from pathlib import Path

from airflow_provider_lclstream.run_dags.flow import run_event_dag

dag = run_event_dag("lclstream_on_run_stop", "run_stop", doc=__doc__, dags_folder=Path(__file__).parent, annotate_followed=True)
