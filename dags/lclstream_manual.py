"""`lclstream_manual`: stream a run (a past one, or one still taking data) into an HPC job, from the form.

Trigger it from the Airflow UI ("Trigger": experiment and run, then the data and compute choices) or
through the REST API v2 (`POST /api/v2/dags/lclstream_manual/dagRuns` with `conf`). The form is checked
before anything starts: a field out of range is refused with the field named (400), and the first task
fails before any transfer exists when the run is not in the ELog or a detector is not one of the run's.
The run's record in the ELog gives its run directory and detectors; a closed run is streamed from its
files, an open one live. Then the same streaming as `lclstream_on_run_start`, with a transfer of its own
(idempotency key `experiment/run/<this DAG run>`), and the result noted on the run.
"""

from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_provider_lclstream.run_dags.flow import plan_manual_run, read_wiring, stream_run

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
wiring = read_wiring()

with DAG(
    "lclstream_manual",
    schedule=None,
    doc_md=__doc__,
    tags=["lclstream"],
    default_args={"retries": 0},
    is_paused_upon_creation=False,
    params={
        "experiment": Param(type="string", pattern=NAME, title="Experiment", section="Run",
                            description="the experiment, as in the ELog (e.g. mfxp1001121)"),
        "run": Param(type="integer", minimum=0, maximum=10**9, title="Run number", section="Run",
                     description="the run number within the experiment"),
        "detectors": Param([], type="array", items={"type": "string", "pattern": NAME}, title="Detectors",
                           section="Data", description="one per line; empty: every detector the run recorded"),
        "serializer": Param("HDF5Serializer", type="string", enum=["HDF5Serializer", "MsgpackSerializer"],
                            title="Serializer", section="Data",
                            description="HDF5 file image per batch, or CrystFEL's msgpack layout"),
        "compression": Param("bitshuffle_lz4", type="string",
                             enum=["none", "gzip", "lzf", "bitshuffle_lz4", "zstd", "zfp"], title="Compression",
                             section="Data", description="HDF5 compression of the detector data"),
        "batch_size": Param(4, type="integer", minimum=1, maximum=100_000, title="Batch size", section="Data",
                            description="events per message"),
        "ranks": Param(1, type="integer", minimum=1, maximum=1024, title="Ranks", section="Compute",
                       description="MPI ranks of the producers"),
        "consumer_command": Param(None, type=["null", "string"], maxLength=4096, title="Consumer command",
                                  section="Compute",
                                  description="empty: the Variable lclstream_consumer_command; placeholders "
                                              "{transfer_id}, {server}, {out_dir}, {experiment}, {run}, ..."),
    },
):
    plans = plan_manual_run(wiring, Path(__file__).parent)
    stream_run(wiring, idempotency_key="{{ run_event.key }}/{{ run_id }}").expand_kwargs(plans)
