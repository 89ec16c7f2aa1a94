"""The local site's certified PKI: an identity for every service and every user, introduced to each other.

Each service (``psik-api``, ``lclstream-api``, later ``elog``) has its own identity and CA, as on a real
site. Each user (people, and ``airflow`` for the Airflow workers) has an identity of its own that
every service's CA introduces under the user's name, with the service's alias installed, so

    certified.http.client("lclstream", pki.user_dir("alice"))    # connects as "alice"

works for each alias without further set-up, exactly as after ``certified introduce`` / ``add-intro``.

    pki = SitePki.create(root / "pki", {"psik": ("psik-api", url), ...}, users=["alice", "airflow"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from certified import identity, intro
from certified.keys import KeyType

HOSTS = ["localhost", "127.0.0.1"]


@dataclass
class SitePki:
    root: Path
    services: dict[str, tuple[str, str]]  # alias -> (service identity name, https URL)
    users: list[str]
    key_type: KeyType = "ed25519"
    _dirs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, services: dict[str, tuple[str, str]], users: list[str],
               key_type: KeyType = "ed25519") -> SitePki:
        """Make every identity under ``root`` and introduce every user to every service."""
        pki = cls(root, dict(services), list(dict.fromkeys(users)), key_type)
        for name, url in pki.services.values():
            pki._init(name, urlsplit(url).hostname)
        for user in pki.users:
            pki._init(user)
            for alias, (service, url) in pki.services.items():
                introduction = intro.introduce(identity.public_key_pem(pki.dir(user)), user, pki.dir(service),
                                               services={alias: url})
                intro.add_intro(introduction, pki.dir(user))
        return pki

    def _init(self, name: str, host: str | None = None) -> None:
        """An identity valid for loopback and for ``host`` (the host name in a service's URL)."""
        if name in self._dirs:
            raise ValueError(f"identity {name!r} is named twice (services and users need distinct names)")
        hosts = HOSTS if host is None or host in HOSTS else [*HOSTS, host]
        identity.init(name, self.root / name, key_type=self.key_type, hosts=hosts)
        self._dirs[name] = self.root / name

    def dir(self, name: str) -> Path:
        """The certified configuration directory of a service or a user."""
        try:
            return self._dirs[name]
        except KeyError:
            raise KeyError(f"no identity {name!r} in the site (known: {', '.join(self._dirs)})") from None

    def user_dir(self, user: str) -> Path:
        if user not in self.users:
            raise KeyError(f"{user!r} is not a user of the site (users: {', '.join(self.users)})")
        return self.dir(user)
