"""The transfer manager: creates transfers, starts their jobs, and drives the state machine.

Its decisions come from what the jobs and the buffer say: the Psi-k job folders (state files) and
the buffer's status (its status file and its signed callbacks). Callbacks make it react at once; a
reconciliation pass every ``poll_interval`` seconds makes it correct even when callbacks were lost
(for example while the service was restarting), so a restarted service resumes tracking.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import yaml

from buffer.config import CB_SECRET_ENV
from buffer.status import BufferStatus
from certified.api_errors import quoted
from lclstream_api.callbacks import BUFFER, JOB, CallbackRefused, check_buffer_status, check_callback
from lclstream_api.credentials import JobFiles, TransferCAs
from lclstream_api.describe import delivered_reason
from lclstream_api.idempotency import request_hash, reuse_message, same_request
from lclstream_api.jobs import JobSnapshot, buffer_script, job_minutes, job_spec, producer_script
from lclstream_api.models import (
    DataCredentials,
    JobInfo,
    TransferOptions,
    TransferRecord,
    TransferRequest,
    config_hash,
)
from lclstream_api.ports import PortPool
from lclstream_api.settings import ServiceConfig
from lclstream_api.states import TransferState, can_transition, transition
from lclstream_api.store import DuplicateKey, PoolExhausted, TransferStore
from psik.manager import Unreachable
from psik.models import JobSpec, ResourceLimits
from psik.safefs import read_text
from streamer.config import StreamerConfig, load_config

log = logging.getLogger("lclstream_api")

PRODUCER = "producer"  # the third job name beside callbacks.BUFFER and callbacks.JOB (callback kinds)
_JOB_DONE = {"completed", "failed", "canceled"}
JOB_LINGER = 30.0  # seconds a job may keep running after its transfer ended before it is canceled
REQUESTED_GRACE = 120.0  # seconds a transfer may stay "requested" (create() submits its jobs well within)


class JobLauncher(Protocol):
    def check_owner(self, owner: str) -> None: ...
    def limits(self, backend: str) -> ResourceLimits: ...
    def give_folder(self, folder: Path, owner: str) -> None: ...
    def check_backend(self, name: str, owner: str) -> None: ...
    def submit(self, spec: JobSpec, owner: str) -> str: ...
    def cancel(self, jobid: str) -> None: ...
    def snapshot(self, jobid: str) -> JobSnapshot: ...


class Rejected(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field  # dotted path in the request body, for 422 answers


class NotFound(Rejected):
    def __init__(self, transfer_id: str) -> None:
        super().__init__(404, f"no transfer {quoted(transfer_id)}")


class TransferManager:
    def __init__(self, settings: ServiceConfig, launcher: JobLauncher, store: TransferStore | None = None) -> None:
        self.settings = settings
        self.launcher = launcher
        if store is None:
            settings.prepare_state_dir()  # before the database exists: it must be the service's alone
        self.store = store or TransferStore(settings.db_path)
        self.pool = PortPool(settings.port_pool, self.store, settings.bind_host)
        self.cas = TransferCAs(settings.state_dir)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._callbacks: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None

    # ---- visibility ------------------------------------------------------------------------------
    # ``admin`` comes from the caller's trust entry (certified's Caller.is_admin), never from a name alone
    def get(self, transfer_id: str, caller: str, admin: bool = False) -> TransferRecord:
        record = self.store.get(transfer_id)
        if record is None or (record.owner != caller and not admin):
            raise NotFound(transfer_id)  # others' transfers do not exist as far as the caller can tell
        return record

    def list(self, caller: str, state: TransferState | None = None, admin: bool = False) -> list[TransferRecord]:
        return self.store.list(None if admin else caller, state)

    def credentials(self, transfer_id: str, caller: str, admin: bool = False) -> DataCredentials:
        """How ``caller`` pulls a transfer's data: only its owner and the readers it named may.

        Anyone else gets the same 404 as for a transfer they cannot see (an admin, who can see it, 403);
        each refusal is logged. A protected stream's answer carries a consumer certificate made now.
        """
        record = self.store.get(transfer_id)
        if record is None or (record.owner != caller and caller not in record.options.readers):
            why = "no such transfer" if record is None else "neither its owner nor one of its readers"
            log.warning("transfer %s: refused data credentials to %s: %s", transfer_id, caller, why)
            if record is not None and admin:
                raise Rejected(403, f"{caller!r} may see transfer {transfer_id} but not read its data: only its "
                                    "owner and the readers the owner named may")
            raise NotFound(transfer_id)
        if record.state.terminal:
            raise Rejected(409, f"transfer {transfer_id} is {record.state.value}; its stream is over")
        if not record.protected:
            return DataCredentials(transfer_id=record.id, url=record.url, protected=False, identity=caller)
        try:
            issued = self.cas.consumer(record.id, caller)
            ca_pem = self.cas.ca_pem(record.id)
        except FileNotFoundError:
            raise Rejected(409, f"transfer {transfer_id} has no data credentials any more (its stream "
                                "is ending)") from None
        log.info("transfer %s: consumer certificate made for %s", transfer_id, caller)
        return DataCredentials(transfer_id=record.id, url=record.url, protected=True, identity=caller,
                               server_name=self.settings.public_host, ca_pem=ca_pem.decode(),
                               cert_pem=issued.cert_pem.decode(), key_pem=issued.key_pem.decode())

    def secret(self, transfer_id: str) -> str | None:
        record = self.store.get(transfer_id)
        return record.cb_secret if record else None

    # ---- creation --------------------------------------------------------------------------------
    def create(self, caller: str, request: TransferRequest,
               idempotency_key: str | None = None) -> tuple[TransferRecord, bool]:
        """Start a transfer; returns (record, True), or (existing record, False) for a known key.

        A known key with another request body is refused with 409 (see ``lclstream_api.idempotency``).
        """
        opts = request.options
        with self._lock:
            if idempotency_key is not None:
                found = self.store.by_idempotency_key(caller, idempotency_key)
                if found is not None:
                    return self._repeated(idempotency_key, request, *found), False
            self._check_options(opts, caller)
            running = self.store.active(caller)
            limit = self.settings.limits.concurrent_per_user
            if len(running) >= limit:
                raise Rejected(429, f"user {caller!r} already has {len(running)} running transfers "
                                    f"(limit {limit}); cancel one or wait for one to finish")
            record = self._new_record(caller, request, idempotency_key)
            try:
                self.store.insert(record, request_hash(request))
            except DuplicateKey as dup:
                self.pool.release(record.id)
                return self._repeated(idempotency_key or "", request, dup.existing, dup.request_hash), False
            log.info("transfer %s requested by %s (%d ranks on %s)", record.id, caller, opts.ranks, opts.backend)
            self._start(record)  # under the lock: the reconciler must not save a copy without the jobs
        return self.store.get(record.id) or record, True

    @staticmethod
    def _repeated(key: str, request: TransferRequest, existing: TransferRecord, stored_hash: str | None) -> TransferRecord:
        if not same_request(existing, stored_hash, request):
            log.warning("transfer request by %s refused: Idempotency-Key %s reused with another body (transfer %s)",
                        existing.owner, quoted(key), existing.id)
            raise Rejected(409, reuse_message(key, existing))
        return existing

    def _check_options(self, opts: TransferOptions, caller: str) -> None:
        try:
            self.launcher.check_owner(caller)  # its jobs run as the caller's OS account
        except PermissionError as exc:
            log.warning("transfer refused for %s: %s", caller, exc)
            raise Rejected(403, str(exc)) from exc
        except Unreachable as exc:
            log.error("transfer refused for %s: %s", caller, exc)
            raise Rejected(503, f"this service is misconfigured: {exc}") from exc
        if opts.ranks > self.settings.limits.max_ranks:
            raise Rejected(422, f"{opts.ranks} is more than this service allows ({self.settings.limits.max_ranks})",
                           "options.ranks")
        allowed = self.settings.allowed_backends or sorted(self.settings.backends)
        if opts.backend not in allowed:
            raise Rejected(422, f"{quoted(opts.backend)} is not offered; choose one of {allowed}", "options.backend")
        try:
            self.launcher.check_backend(opts.backend, caller)
        except PermissionError as exc:
            raise Rejected(403, f"options.backend: {exc}") from exc
        except LookupError as exc:
            raise Rejected(422, str(exc), "options.backend") from exc
        if not opts.tls and not self.settings.allow_plain_tcp:
            raise Rejected(422, "this service streams data only over tls+tcp with certificates made for each "
                                "transfer; plain tcp (options.tls=false) needs allow_plain_tcp in the service "
                                "configuration, for trusted networks only", "options.tls")
        self._check_limits(opts)

    def _check_limits(self, opts: TransferOptions) -> None:
        """The producer job (ranks processes) and the buffer job (one) must fit their backends' limits."""
        for backend, processes in ((opts.backend, opts.ranks), (self.settings.buffer_backend, 1)):
            limits = self.launcher.limits(backend)
            if limits.process_count is not None and processes > limits.process_count:
                raise Rejected(422, f"{opts.ranks} ranks are more than backend {backend!r} runs in one job "
                                    f"({limits.process_count} processes)", "options.ranks")
            if limits.duration is not None and opts.total_timeout is not None \
                    and job_minutes(opts.total_timeout, limits.duration) > limits.duration:
                most = max(limits.duration - 1, 0) * 60
                raise Rejected(422, f"{opts.total_timeout:.10g} s is longer than backend {backend!r} runs a job "
                                    f"(at most {most:.10g} s for a transfer)", "options.total_timeout")

    def _job_minutes(self, opts: TransferOptions) -> float:
        longest = min(self.launcher.limits(b).duration or float("inf")
                      for b in (opts.backend, self.settings.buffer_backend))
        return job_minutes(opts.total_timeout, longest)

    def _new_record(self, caller: str, request: TransferRequest, key: str | None) -> TransferRecord:
        transfer_id = uuid.uuid4().hex[:12]
        try:
            recv_port, send_port = self.pool.allocate(transfer_id, 2)
        except PoolExhausted as exc:
            raise Rejected(503, f"no free data ports for a new transfer ({exc}); try again later") from None
        scheme = "tls+tcp" if request.options.tls else "tcp"
        host = self.settings.public_host
        handler: dict[str, Any] = {"type": "NNGPushDataHandler", "url": f"{scheme}://{host}:{recv_port}",
                                   "role": "client"}
        if request.options.tls:
            files = JobFiles.under(self.transfer_dir(transfer_id))  # written by _start
            handler.update(tls_cert=str(files.producer_cert), tls_key=str(files.producer_key), tls_ca=str(files.ca))
        data = request.config.model_dump(mode="json")
        data["data_handlers"] = [handler]
        now = time.time()
        return TransferRecord(
            id=transfer_id, owner=caller, created=now, updated=now, state=TransferState.REQUESTED,
            url=f"{scheme}://{host}:{send_port}", recv_url=handler["url"], ports=[recv_port, send_port],
            options=request.options, config=data, config_hash=config_hash(request.config),
            idempotency_key=key, cb_secret=secrets.token_hex(32),
            log=transition([], TransferState.REQUESTED, f"requested by {caller}", now))

    def transfer_dir(self, transfer_id: str) -> Path:
        return self.settings.state_dir / "transfers" / transfer_id

    def _start(self, record: TransferRecord) -> None:
        """Write the rewritten streamer config and submit the buffer job, then the producer job."""
        opts, cfg = record.options, self.settings
        self._set_state(record, TransferState.STARTING, "starting buffer and producer jobs")
        try:
            folder = self.transfer_dir(record.id)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # the transfer's own CA: its key stays in the service's folder, the jobs get their files here
            tls = self.cas.create(record.id, folder, [cfg.public_host]) if record.protected else None
            config_file = folder / "streamer.yaml"
            config: StreamerConfig = load_config(record.config)  # the rewritten config must still be valid
            config_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
            scheme = "tls+tcp" if record.protected else "tcp"
            bind = cfg.bind_host
            duration = self._job_minutes(opts)
            bscript = buffer_script(cfg, f"{scheme}://{bind}:{record.ports[0]}",
                                    f"{scheme}://{bind}:{record.ports[1]}", folder / "buffer-status.json",
                                    opts.max_bytes, opts.idle_timeout, tls, opts.ranks)
            pscript = producer_script(cfg, config_file, opts.ranks)
            self.launcher.give_folder(folder, record.owner)  # its jobs run as the owner: theirs, mode 0700
            callback = cfg.callback_url(JOB, record.id)
            # the buffer posts its own status to the "buffer" route; the secret stays out of the script
            # and out of the process list (nng-stream reads it from its environment)
            buffer_env = {"LCLSTREAM_BUFFER_CALLBACK": cfg.callback_url(BUFFER, record.id),
                          CB_SECRET_ENV: record.cb_secret}
            bjob = self.launcher.submit(job_spec(f"buffer-{record.id}", bscript, cfg.buffer_backend, callback,
                                                 record.cb_secret, 1, duration, buffer_env), record.owner)
            record.jobs[BUFFER] = JobInfo(jobid=bjob)
            self.store.save(record)
            pjob = self.launcher.submit(job_spec(f"producer-{record.id}", pscript, opts.backend, callback,
                                                 record.cb_secret, opts.ranks, duration), record.owner)
            record.jobs[PRODUCER] = JobInfo(jobid=pjob)
            self.store.save(record)
        except Exception as exc:
            log.warning("transfer %s: starting jobs failed: %s", record.id, exc)
            self._fail(record, f"could not start jobs: {exc}")
            return
        log.info("transfer %s: buffer job %s, producer job %s", record.id, bjob, pjob)

    # ---- state changes ---------------------------------------------------------------------------
    def _set_state(self, record: TransferRecord, state: TransferState, reason: str = "") -> bool:
        if record.state == state or not can_transition(record.state, state):
            return False
        record.log = transition(record.log, state, reason)
        record.state = state
        record.updated = record.log[-1].time
        if state in (TransferState.FAILED, TransferState.CANCELED, TransferState.COMPLETED):
            record.reason = reason
        self.store.save(record)
        log.info("transfer %s -> %s%s", record.id, state.value, f" ({reason})" if reason else "")
        if state.terminal:
            self._finish(record)
        return True

    def _fail(self, record: TransferRecord, reason: str) -> None:
        self._set_state(record, TransferState.FAILED, reason)

    def _finish(self, record: TransferRecord) -> None:
        """Stop whatever still runs and give the ports back.

        Jobs that are ending on their own are left to it: all of them when the transfer completed, and
        the buffer once its own status is final (done, failed, canceled).
        """
        buffer_ending = record.buffer_status is not None and record.buffer_status.state.final
        spare = set(record.jobs) if record.state is TransferState.COMPLETED else {BUFFER} if buffer_ending else set()
        self._cancel_jobs(record, f"transfer {record.state.value}", spare)
        self.cas.forget(record.id)  # no consumer certificate can be made for it any more
        self.pool.release(record.id)
        record.ports_released = True
        self.store.save(record)

    def _cancel_jobs(self, record: TransferRecord, why: str, spare: set[str] | frozenset[str] = frozenset()) -> None:
        # producers first: a producer whose buffer vanished under it fails on its own before its cancel
        for name, job in sorted(record.jobs.items(), key=lambda item: item[0] != PRODUCER):
            if job.state in _JOB_DONE or name in spare:
                continue
            log.info("transfer %s: cancelling %s job %s (%s)", record.id, name, job.jobid, why)
            try:
                self.launcher.cancel(job.jobid)
            except Exception as exc:
                log.warning("transfer %s: cancelling %s job %s failed: %s", record.id, name, job.jobid, exc)

    def cancel(self, transfer_id: str, caller: str, admin: bool = False) -> TransferRecord:
        with self._lock:
            record = self.get(transfer_id, caller, admin)
            if record.state.terminal:
                raise Rejected(409, f"transfer {transfer_id} already {record.state.value}; nothing to cancel")
            self._set_state(record, TransferState.CANCELED, f"canceled by {caller}")
            return record

    # ---- observations ----------------------------------------------------------------------------
    def on_callback(self, kind: str, transfer_id: str, body: Any) -> None:
        """Decide on a verified callback, then queue it for the reconciler thread.

        A callback that would move the transfer back (``lclstream_api.callbacks``) raises ``Rejected``
        (409, or 422 for a body that is no status) and changes nothing. The decision reads the stored
        record without the manager's lock: a job posts its callbacks while the service, holding that
        lock, submits or cancels it, so waiting for the lock here could stall both.
        """
        record = self.store.get(transfer_id)
        if record is None:
            raise NotFound(transfer_id)
        try:
            check_callback(kind, record, body)
        except CallbackRefused as exc:
            log.warning("transfer %s: %s callback refused (%d): %s", transfer_id, kind, exc.status, exc.message)
            raise Rejected(exc.status, exc.message, exc.field) from None
        self._callbacks.put((kind, transfer_id, body))

    def handle_callback(self, kind: str, transfer_id: str, body: dict[str, Any]) -> None:
        """A verified callback: the buffer's status, or a Psi-k job transition (the folder has it too)."""
        with self._lock:
            record = self.store.get(transfer_id)
            if record is None:
                return
            if kind == BUFFER:
                try:  # decided when it arrived; the record may have moved on since
                    status = check_buffer_status(record, body)
                except CallbackRefused as exc:
                    log.info("transfer %s: buffer status skipped: %s", transfer_id, exc.message)
                    return
                if record.buffer_status != status:
                    if record.buffer_status is None or record.buffer_status.state != status.state:
                        log.info("transfer %s: buffer reports %s%s", transfer_id, status.state.value,
                                 f" ({status.reason})" if status.reason else "")
                    record.buffer_status = status
                    self.store.save(record)
            self.reconcile(record)

    def read_buffer_status(self, record: TransferRecord) -> None:
        try:  # the folder belongs to the owner's account: no links followed, no FIFOs, bounded
            status = BufferStatus.model_validate_json(read_text(self.transfer_dir(record.id), "buffer-status.json",
                                                                2**20))
        except (OSError, ValueError):  # missing, not a plain file of the owner's, or not a status
            return
        if record.buffer_status is None or status.time >= record.buffer_status.time:
            record.buffer_status = status

    def refresh(self, record: TransferRecord) -> None:
        for job in record.jobs.values():
            try:
                snap = self.launcher.snapshot(job.jobid)
            except Exception as exc:
                log.debug("job %s unreadable: %s", job.jobid, exc)
                continue
            job.state, job.info, job.log_tail = snap.state, snap.info, snap.log_tail
        self.read_buffer_status(record)

    def reconcile(self, record: TransferRecord, now: float | None = None) -> TransferRecord:
        """Bring one transfer's state up to date with its jobs and buffer. Safe to call any time."""
        with self._lock:
            record = self.store.get(record.id) or record  # the stored copy is the latest
            if record.state.terminal:
                if any(job.state not in _JOB_DONE for job in record.jobs.values()):
                    self.refresh(record)  # keep the record's job states true until they have exited
                    self.store.save(record)
                    if (time.time() if now is None else now) - record.updated > JOB_LINGER:
                        self._cancel_jobs(record, "still running after the transfer ended")
                if not record.ports_released:
                    self._finish(record)
                return record
            if record.state is TransferState.REQUESTED:
                if (time.time() if now is None else now) - record.created > REQUESTED_GRACE:
                    self._fail(record, "the service stopped before the jobs of this transfer were started")
                return record  # otherwise still being started by create()
            self.refresh(record)
            self.store.save(record)
            self._decide(record, time.time() if now is None else now)
            return record

    def _decide(self, record: TransferRecord, now: float) -> None:
        producer = record.jobs.get(PRODUCER)
        buffer_job = record.jobs.get(BUFFER)
        pstate = producer.state if producer else "new"
        bjob = buffer_job.state if buffer_job else "new"
        status = record.buffer_status
        bstate = status.state.value if status else ""
        if pstate == "failed":
            tail = f"; last output: {producer.log_tail[-1]}" if producer and producer.log_tail else ""
            self._fail(record, f"producer job failed: {producer.info or 'non-zero exit'}{tail}")
            return
        if bstate == "failed" or (bjob == "failed" and bstate not in ("done",)):
            why = (status.reason if status else None) or (buffer_job.info if buffer_job else "")
            self._fail(record, f"buffer failed: {why or 'exited with an error'}")
            return
        if pstate == "canceled" or bjob == "canceled" or bstate == "canceled":
            self._fail(record, "a job of this transfer was canceled outside the service")
            return
        buffer_done = bstate == "done" or bjob == "completed"
        if buffer_done and pstate == "completed":
            self._set_state(record, TransferState.COMPLETED, delivered_reason(status, record.options.ranks))
            return
        if buffer_done and bjob == "completed" and pstate in ("new", "queued"):
            self._fail(record, "buffer finished before the producers started")
            return
        if bstate == "draining" or pstate == "completed" or buffer_done:
            self._set_state(record, TransferState.DRAINING, "producers finished; buffer draining")
        elif bstate == "streaming":
            self._set_state(record, TransferState.STREAMING, "first producer connected")
        self._check_timeouts(record, now)

    def _state_since(self, record: TransferRecord, state: TransferState) -> float | None:
        for entry in record.log:
            if entry.state is state:
                return entry.time
        return None

    def _check_timeouts(self, record: TransferRecord, now: float) -> None:
        opts = record.options
        if opts.total_timeout is not None and now - record.created > opts.total_timeout:
            self._fail(record, f"total timeout of {opts.total_timeout:g} s exceeded")
            return
        grace = 5.0  # the buffer enforces idle_timeout itself; this catches a buffer that never started
        if record.state is TransferState.STARTING:
            since = self._state_since(record, TransferState.STARTING) or record.created
            if now - since > opts.idle_timeout + grace:
                self._fail(record, f"no producer connected within {opts.idle_timeout:g} s")
            return
        if record.buffer_status is not None and record.buffer_status.consumers_total == 0:
            since = self._state_since(record, TransferState.STREAMING) or \
                self._state_since(record, TransferState.DRAINING) or now
            if now - since > opts.idle_timeout:
                self._fail(record, f"no consumer connected within {opts.idle_timeout:g} s")

    # ---- background reconciliation ---------------------------------------------------------------
    def _needs_attention(self, record: TransferRecord) -> bool:
        return (not record.state.terminal or not record.ports_released
                or any(job.state not in _JOB_DONE for job in record.jobs.values()))

    def reconcile_all(self) -> None:
        for record in filter(self._needs_attention, self.store.list()):
            try:
                self.reconcile(record)
            except Exception:
                log.exception("transfer %s: reconciliation failed", record.id)

    def start(self) -> None:
        if self._thread is not None:
            return
        resumed = self.store.active()
        if resumed:
            log.info("resuming tracking of %d transfers: %s", len(resumed), ", ".join(r.id for r in resumed))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="transfer-reconciler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_pass = time.monotonic()
        while not self._stop.is_set():
            try:
                item = self._callbacks.get(timeout=max(next_pass - time.monotonic(), 0.01))
            except queue.Empty:
                item = None
            if item is not None:
                try:
                    self.handle_callback(*item)
                except Exception:
                    log.exception("callback %s for transfer %s failed", item[0], item[1])
            if time.monotonic() >= next_pass:
                self.reconcile_all()
                next_pass = time.monotonic() + self.settings.poll_interval

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
