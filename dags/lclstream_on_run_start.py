"""`lclstream_on_run_start`: a run starts at the beamline, and its data streams into a job at the HPC side
while the run takes data.

Fired by the facility's `run_start` events on Kafka (a `RunEventTrigger` behind the asset
`lclstream_run_starts`, this project's form or LCLS's eLog `Create`). Every run among the events that
reach one DAG run is streamed (the task group `stream` is mapped over the runs):

1. `runs` plans each run: the streamer config (the live source on the run's `run_dir`), the transfer
   options, the consumer job; a run that cannot be planned is noted on the run (`report_refused`);
2. `stream.transfer` requests the transfer from LCLStream-API (idempotency key `experiment/run`: a
   run_start delivered twice makes one transfer, and only the DAG run that made it consumes it);
3. `stream.consumer` runs the consumer job through Psik-API (`lclstream pull ID --server ... --out ...`
   by default, any command the Variable `lclstream_consumer_command` names) and waits for it;
4. `stream.connected` / `stream.drained` wait for the consumer to connect and the transfer to complete;
5. `stream.outcome` + `stream.annotate` note on the run in the ELog the events and bytes delivered, the
   duration and rate, the transfer and job ids, and whether the delivered count equals the run's event
   count; `stream.verdict` fails the DAG run if the run was not streamed completely.

Configuration: Airflow connections and Variables `lclstream_*` (see the README).
"""

from pathlib import Path

from airflow_provider_lclstream.run_dags.flow import run_event_dag

dag = run_event_dag("lclstream_on_run_start", "run_start", doc=__doc__, dags_folder=Path(__file__).parent, annotate_followed=False)
