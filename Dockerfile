# One image for every LCLStream program (Airflow's components, LCLStream-API, Psik-API, the ELog service,
# lclstreamer, nng-stream, the lclstream client): the package is installed at build time, so no container
# installs anything when it starts. Used by docker-compose.yaml; build with `docker build -t lclstream .`.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow

# tini reaps the children of each program (Airflow's task processes, Psi-k jobs, mpiexec ranks)
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/lclstream
COPY pyproject.toml README.md ./
COPY airflow_provider_lclstream ./airflow_provider_lclstream
COPY streamer ./streamer
COPY buffer ./buffer
COPY psik ./psik
COPY certified ./certified
COPY lclstream_api ./lclstream_api
COPY elog ./elog
COPY examples ./examples
# the run DAGs and their streamer config template, in Airflow's DAGs folder
COPY dags /opt/airflow/dags
# psycopg2 is Airflow's driver for the Postgres metadata database of docker-compose.yaml
RUN pip install . "psycopg2-binary>=2.9" \
    && useradd --create-home --uid 50000 --gid 0 lclstream \
    && mkdir -p /opt/airflow/dags /etc/lclstream/airflow /var/lib/lclstream /data/runs \
       /etc/lclstream/pki/airflow /etc/lclstream/pki/hpc /etc/lclstream/pki/daq \
       /etc/lclstream/pki/lclstream-api /etc/lclstream/pki/psik-api /etc/lclstream/pki/elog \
    && chown -R lclstream:0 /opt/airflow /etc/lclstream /var/lib/lclstream /data

USER lclstream
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["lclstream", "--help"]
