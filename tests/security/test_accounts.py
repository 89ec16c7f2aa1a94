"""Jobs run as their owner's OS account, as an attacker on one machine would try it (tests run as root).

Two real accounts are created for the module (unique names, removed at the end). ``psik-api`` runs as
root with an identity -> account map; alice's jobs run as alice (locally and under SLURM), in a folder
that is hers with mode 0700; what her job tries against bob's job folder and the service's key files
is refused by the kernel; links and FIFOs she plants in her own folder are never followed by the
service, and a run id she forges cannot make the service stop bob's job. A caller without an account
gets 403; LCLStream-API runs a transfer's buffer and producers as the owner's account.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certified.http import client as tls_client
from psik.accounts import Account
from psik.client import PsikAPIError, PsikClient
from psik.models import JobRecord, JobState
from tests.fixtures.os_users import os_users
from tests.fixtures.pki import Pki, make_pki
from tests.fixtures.slurm import SlurmCluster
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv, synthetic_config
from tests.psik.helpers import process_gone, psik_api, wait_for

SERVICE_SECRET = "service-secret-4417"


@dataclass
class Site:
    root: Path
    pki: Pki
    users: dict[str, Account]
    prefix: Path
    log: Path

    def client(self, who: str) -> PsikClient:
        return PsikClient("psik", self.pki.user_dir(who))

    def finished(self, who: str, jobid: str, timeout: float = 120) -> JobRecord:
        with self.client(who) as c:
            return wait_for(lambda: r if (r := c.get(jobid)).state.terminal else None, timeout=timeout,
                            what=f"job {jobid} to finish")


@pytest.fixture(scope="module")
def site(slurm_cluster: SlurmCluster) -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="lclstream-accounts-"))
    root.chmod(0o711)  # like /var/lib: jobs reach their own folders below, nobody lists it
    try:
        with os_users("alice", "bob") as users:
            pki = make_pki(root, server="psik", users=("alice", "bob", "boss", "carol", "dave"))
            pki.server_dir.chmod(0o755)  # even an open config folder: the key files' own modes protect them
            prefix = root / "jobs"
            cfg = root / "psik.json"
            cfg.write_text(json.dumps({
                "prefix": str(prefix), "admins": ["boss"], "poll_interval": 1.0,
                "accounts": {"alice": users["alice"].name, "bob": users["bob"].name, "boss": getpass.getuser(),
                             "dave": f"lcs-gone-{secrets.token_hex(3)}"},
                "backends": {"default": {"type": "local"},
                             "hpc": {"type": "slurm", "queue_name": slurm_cluster.partition}}}))
            log = root / "psik-api.log"
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])  # the final cancel of unfinished jobs
                env = {**slurm_cluster.env, "PSIK_SERVICE_SECRET": SERVICE_SECRET}  # the service's own, not a job's
                with psik_api(cfg, pki.server_dir, log, env=env) as url:
                    pki.add_service_alias("psik", url)
                    yield Site(root, pki, users, prefix, log)
    finally:
        shutil.rmtree(root, ignore_errors=True)


WHOAMI = 'id -u; id -g; echo "$USER $HOME"; stat -c "%u %a" "$base"; touch made-here; stat -c %u made-here\n'


@pytest.mark.parametrize("backend", ["default", "hpc"])
def test_jobs_run_as_the_callers_account_in_a_folder_of_its_own(site: Site, backend: str) -> None:
    alice = site.users["alice"]
    with site.client("alice") as c:
        rec = c.submit({"script": WHOAMI, "backend": backend})
        assert rec.account == alice.name
        done = site.finished("alice", rec.jobid)
        assert done.state is JobState.COMPLETED, done.info
        assert c.logs(rec.jobid) == f"{alice.uid}\n{alice.gid}\n{alice.name} /nonexistent\n{alice.uid} 700\n{alice.uid}\n"
    folder = site.prefix / rec.jobid
    st = os.stat(folder)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (alice.uid, 0o700)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            assert os.lstat(os.path.join(dirpath, name)).st_uid == alice.uid, name
    assert stat.S_IMODE(os.stat(site.prefix).st_mode) == 0o711 and os.stat(site.prefix).st_uid == 0


@pytest.mark.parametrize("backend", ["default", "hpc"])
def test_a_job_gets_none_of_the_services_environment(site: Site, backend: str) -> None:
    script = 'echo "secret=${PSIK_SERVICE_SECRET:-unset} token=$TOKEN path=${PATH:+set}"\n'
    with site.client("alice") as c:
        rec = c.submit({"script": script, "backend": backend, "environment": {"TOKEN": "alices-7"}})
        done = site.finished("alice", rec.jobid)
        assert done.state is JobState.COMPLETED, done.info
        assert c.logs(rec.jobid) == "secret=unset token=alices-7 path=set\n"


def test_a_job_cannot_read_another_users_job_nor_the_service_keys(site: Site) -> None:
    with site.client("bob") as bob:
        bobs = bob.submit({"script": "echo bob-data-7731 > secret.txt; echo bob-output-7731",
                           "environment": {"TOKEN": "bob-token-7731"}, "cb_secret": "bob-cb-7731",
                           "callback": "http://127.0.0.1:9/nowhere"}).jobid
    assert site.finished("bob", bobs).state is JobState.COMPLETED
    theirs, keys = site.prefix / bobs, site.pki.server_dir
    targets = [theirs / "work" / "secret.txt", theirs / "spec.json", theirs / "status.csv",
               theirs / "log" / "stdout.1", keys / "id.key", keys / "CA.key"]
    probe = "".join(f'if cat {t} >/dev/null 2>&1; then echo "READ {t}"; else echo "DENIED {t}"; fi\n'
                    for t in targets)
    probe += (f'cat {keys / "id.crt"} >/dev/null && echo "READ public certificate"\n'
              f'ls {theirs} >/dev/null 2>&1 && echo "LISTED bob" || echo "DENIED ls bob"\n'
              f'ls {site.prefix} >/dev/null 2>&1 && echo "LISTED jobs" || echo "DENIED ls jobs"\n'
              f'touch {theirs / "work" / "planted"} 2>/dev/null && echo WROTE || echo "DENIED write"\n'
              f'cat {" ".join(map(str, targets))} 2>&1 || true\n')
    with site.client("alice") as alice:
        mine = alice.submit({"script": probe}).jobid
        assert site.finished("alice", mine).state is JobState.COMPLETED
        out = alice.logs(mine)
    assert [line for line in out.splitlines() if line.startswith(("READ", "LISTED", "DENIED", "WROTE"))] == [
        *(f"DENIED {t}" for t in targets), "READ public certificate", "DENIED ls bob", "DENIED ls jobs",
        "DENIED write"]
    assert out.count("Permission denied") == len(targets)
    for secret in ("bob-data-7731", "bob-output-7731", "bob-token-7731", "bob-cb-7731", "PRIVATE KEY"):
        assert secret not in out
    for key in ("id.key", "CA.key"):
        st = os.stat(keys / key)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)


def test_a_caller_without_an_account_is_refused(site: Site) -> None:
    before = sorted(p.name for p in site.prefix.iterdir())
    with tls_client("psik", site.pki.user_dir("carol")) as http:
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/backends")):
            r = http.request(method, path, json={"script": "id"} if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["detail"] == ("identity 'carol' has no OS account on this service; an operator must "
                                          "map it in the Psi-k configuration's `accounts`")
    with tls_client("psik", site.pki.user_dir("dave")) as http:
        r = http.post("/v1/jobs", json={"script": "id"})
        assert r.status_code == 403 and "does not exist on this host" in r.json()["detail"]
    assert sorted(p.name for p in site.prefix.iterdir()) == before, "nothing was created"
    wait_for(lambda: "refused carol (trusted as own CA) POST /v1/jobs" in site.log.read_text(), timeout=30,
             what="the refusal in psik-api's log")


def test_links_and_fifos_planted_in_a_job_folder_are_not_followed(site: Site) -> None:
    key = site.pki.server_dir / "id.key"
    script = (f'ln -s {key} leak; mkfifo pipe; ln -s /etc "$base/work/etc"; echo visible\n'
              f'echo secret-line >&2; ln -sf {key} "$base/log/stderr.1"\n')
    with site.client("alice") as alice, tls_client("psik", site.pki.user_dir("alice")) as http:
        jobid = alice.submit({"script": script}).jobid
        assert site.finished("alice", jobid).state is JobState.COMPLETED
        assert alice.logs(jobid) == "visible\n"
        for path, why in (("work/leak", "symbolic link"), ("work/pipe", "not a regular file"),
                          ("work/etc/passwd", "symbolic link"), ("log/stderr.1", "symbolic link")):
            r = http.get(f"/v1/jobs/{jobid}/files", params={"path": path}, timeout=30)
            assert r.status_code == 400 and why in r.json()["detail"], (path, r.text)
        r = http.get(f"/v1/jobs/{jobid}/logs", params={"stream": "stderr"}, timeout=30)
        assert r.status_code == 400 and "PRIVATE KEY" not in r.text


def test_a_job_rewiring_its_state_file_or_run_id_harms_nobody(site: Site) -> None:
    """alice's job swaps status.csv for a link to a root file and names bob's run as its own; alice cancels."""
    target = site.root / "root-owned.txt"
    target.write_text("untouched\n")
    with site.client("bob") as bob:
        bobs = bob.submit({"script": "sleep 600"}).jobid
        wait_for(lambda: bob.get(bobs).state is JobState.ACTIVE, timeout=60, what="bob's job to run")
    bob_group = int((site.prefix / bobs / "native.1").read_text())
    with site.client("alice") as alice:
        jobid = alice.submit({"script": f'mv "$base/status.csv" "$base/status.old"; ln -s {target} "$base/status.csv"\n'
                                        f'echo {bob_group} > "$base/native.new"; mv "$base/native.new" "$base/native.1"\n'
                                        'echo ready > ready; sleep 600\n'}).jobid
        folder = site.prefix / jobid
        wait_for(lambda: (folder / "work" / "ready").exists(), timeout=60, what="alice's job to rewire itself")
        with pytest.raises(PsikAPIError) as err:
            alice.cancel(jobid)
        assert err.value.status == 400 and "status.csv" in str(err.value)
    assert target.read_text() == "untouched\n", "the service wrote through alice's link"
    with site.client("bob") as bob:
        assert bob.get(bobs).state is JobState.ACTIVE and not process_gone(bob_group), "bob's job was stopped"
        bob.cancel(bobs)
    wait_for(lambda: process_gone(bob_group), timeout=30, what="bob's own cancel to work")


def test_a_forged_slurm_job_id_cannot_cancel_someone_elses_job(site: Site, slurm_cluster: SlurmCluster) -> None:
    with site.client("bob") as bob:
        bobs = bob.submit({"script": "sleep 600", "backend": "hpc"}).jobid
        wait_for(lambda: bob.get(bobs).state is JobState.ACTIVE, timeout=120, what="bob's batch job to run")
    bob_native = (site.prefix / bobs / "native.1").read_text().strip()
    with site.client("alice") as alice:
        jobid = alice.submit({"script": f'echo {bob_native} > "$base/native.new"; mv "$base/native.new" '
                                        '"$base/native.1"; echo ready > ready; sleep 600', "backend": "hpc"}).jobid
        wait_for(lambda: (site.prefix / jobid / "work" / "ready").exists(), timeout=120, what="alice's batch job")
        alice.cancel(jobid)
    state = slurm_cluster.job(bob_native)
    assert state["JobState"] == "RUNNING" and state["UserId"].startswith(site.users["bob"].name)
    with site.client("bob") as bob:
        bob.cancel(bobs)
    slurm_cluster.wait_for_state(bob_native, {"CANCELLED"}, timeout=60)


def test_a_transfers_jobs_run_as_its_owner(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="lclstream-transfer-accounts-"))
    root.chmod(0o711)
    try:
        with os_users("owner") as users:
            owner = users["owner"]
            pki = make_pki(tmp_path, server="lclstream-api", users=("alice",))
            service = Service(root / "svc", pki, overrides={"accounts": {"alice": owner.name}})
            try:
                service.start()
                with service.client("alice") as api:
                    view = api.request(synthetic_config(events=16), {"ranks": 1, "idle_timeout": 120})
                    out = tmp_path / "out"
                    pulled = subprocess.run([str(VENV_BIN / "lclstream"), "pull", view.id, "--server", "lclstream",
                                             "--out", str(out)], capture_output=True, text=True, timeout=300,
                                            env=env_with_venv({"CERTIFIED_CONFIG": str(pki.user_dir("alice"))}))
                    assert pulled.returncode == 0, pulled.stderr
                    done = api.wait(view.id, timeout=120)
                    assert done.state.value == "completed", (done.reason, service.log_text()[-3000:])
                state = Path(service.settings["state_dir"])
                folder = state / "transfers" / view.id
                st = os.stat(folder)
                assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (owner.uid, 0o700)
                assert os.stat(folder / "buffer-status.json").st_uid == owner.uid, "the buffer wrote it as the owner"
                for job in done.jobs.values():
                    assert os.stat(state / "jobs" / job.jobid).st_uid == owner.uid
                db = os.stat(state / "transfers.sqlite")
                assert (db.st_uid, stat.S_IMODE(db.st_mode)) == (0, 0o600)
                assert stat.S_IMODE(os.stat(state).st_mode) == 0o711
            finally:
                service.stop()
                service.cleanup_jobs()
    finally:
        shutil.rmtree(root, ignore_errors=True)
