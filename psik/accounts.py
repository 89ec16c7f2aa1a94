"""OS accounts: which account a certificate identity's jobs run as, and handing folders to it.

The Psi-k configuration maps identities to accounts (``accounts: {alice: alice, alice-lab/anna:
anna}``). Without a mapping the service is single-user: it accepts only the identity named like the
account it runs as (its login name, the name ``certified-signer`` gives that user too), and runs
that identity's jobs as itself. A service running as root switches to the job's account for
everything the job does (``popen_user`` for the local supervisor, ``sbatch --uid`` for SLURM); a
service running as anyone else can only run jobs as itself, and says so instead of pretending.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class NoAccount(PermissionError):
    """The identity has no usable OS account on this service (answered with 403)."""


class Account(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()


def _from_pwd(entry: pwd.struct_passwd) -> Account:
    try:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    return Account(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups, home=entry.pw_dir)


def lookup(name: str) -> Account:
    try:
        return _from_pwd(pwd.getpwnam(name))
    except KeyError:
        raise NoAccount(f"OS account {name!r} does not exist on this host") from None


def by_uid(uid: int) -> Account:
    try:
        return _from_pwd(pwd.getpwuid(uid))
    except KeyError:
        raise NoAccount(f"uid {uid} has no OS account on this host") from None


def current() -> Account:
    """The account this process runs as."""
    return by_uid(os.geteuid())


def mapping(accounts: dict[str, str] | None) -> dict[str, str]:
    """The identity -> account map in force: the configured one, or the single-user default."""
    if accounts is not None:
        return accounts
    me = current().name
    return {me: me}


def account_for(identity: str, accounts: dict[str, str] | None) -> Account:
    """The account ``identity``'s jobs run as; ``NoAccount`` (with a sentence for the caller) otherwise."""
    table = mapping(accounts)
    if identity not in table:
        how = "the Psi-k configuration's `accounts`" if accounts is not None else \
            f"`accounts` (this single-user service accepts only the identity {current().name!r})"
        raise NoAccount(f"identity {identity!r} has no OS account on this service; an operator must map it in {how}")
    account = lookup(table[identity])
    if not account.is_current and os.geteuid() != 0:
        raise NoAccount(f"identity {identity!r} maps to account {account.name!r}, but this service runs as "
                        f"{current().name!r} without the right to switch users (run it as root, or map to "
                        f"{current().name!r})")
    return account


def popen_user(account: Account) -> dict[str, object]:
    """``subprocess.Popen`` keyword arguments that start a child as ``account`` (none when it is us)."""
    if account.is_current:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}


def environment(account: Account) -> dict[str, str]:
    """The variables that say who a process is."""
    return {"HOME": account.home, "USER": account.name, "LOGNAME": account.name}


# what a job for another account keeps of the service's environment: where programs are, the locale and
# time zone, and where SLURM's configuration is; nothing else (the service's variables may hold its secrets)
KEPT_VARIABLES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SLURM_CONF"})


def job_environment(account: Account, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a job's processes start from (``JobSpec.environment`` is added on top).

    As the service's own account: the service's environment. As another account: only ``KEPT_VARIABLES``
    and the locale's ``LC_*``, plus who the job is (``HOME``, ``USER``, ``LOGNAME``).
    """
    env = os.environ if environ is None else environ
    if account.is_current:
        return dict(env)
    kept = {k: v for k, v in env.items() if k in KEPT_VARIABLES or k.startswith("LC_")}
    return kept | environment(account)


def blocking_folders(path: Path, account: Account) -> list[Path]:
    """The folders above ``path`` whose mode bits do not let ``account`` search them (ACLs not read)."""
    if account.uid == 0:
        return []
    blocked = []
    for folder in reversed([path, *path.parents]):
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            break  # made later, by the service, with a searchable mode
        if st.st_uid == account.uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in account.groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            blocked.append(folder)
    return blocked


def unreachable_by(path: Path, account: Account) -> Path | None:
    """The first folder above ``path`` that ``account`` may not search (by its mode bits), or None."""
    blocked = blocking_folders(path, account)
    return blocked[0] if blocked else None


def cannot_use(account: Account, python: str, folder: Path) -> str | None:
    """Why ``account`` cannot run ``python`` and reach ``folder`` (asked of the kernel, ACLs and all), or None."""
    if account.is_current:
        return None
    probe = "import os, sys; os.stat(sys.argv[1])"
    try:
        out = subprocess.run([python, "-I", "-S", "-c", probe, str(folder)], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL, cwd="/", env=environment(account),
                             **popen_user(account))  # type: ignore[call-overload]
    except OSError as exc:
        where = unreachable_by(Path(python).resolve(), account)
        hint = f" ({where} does not let it through)" if where is not None else ""
        return f"account {account.name!r} cannot run the service's Python {python}{hint}: {exc.strerror}"
    except subprocess.TimeoutExpired:
        return f"account {account.name!r} did not manage to run the service's Python within 60 s"
    if out.returncode != 0:
        where = unreachable_by(folder, account)
        hint = f" ({where} does not let it through)" if where is not None else ""
        last = (out.stderr.strip().splitlines() or ["no error output"])[-1]
        return f"account {account.name!r} cannot reach the jobs folder {folder}{hint}: {last}"
    return None


def give(path: Path, account: Account, mode: int = 0o700) -> None:
    """Hand a folder the service just made (and everything in it) to ``account``; the folder gets ``mode``.

    Links are never followed (``lchown``); meant for folders nobody else could write to yet.
    """
    os.chmod(path, mode)
    if account.is_current:
        return
    for root, dirs, files, _fd in os.fwalk(path, follow_symlinks=False):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), account.uid, account.gid)
    os.lchown(path, account.uid, account.gid)

