"""Which names a trusted CA may vouch for: a name is only what its issuer may vouch for.

A server trusts two kinds of client CAs. Its own CA (the one that signs introductions) vouches for
any name it signed. A client CA trusted under a name (``certified add-client alice-lab CA.crt``)
vouches only for that name and for names inside its namespace, ``alice-lab/<name>`` (each part made
of the same characters as any certified name). Anything else it signs, or a certificate without a
common name, authenticates nobody: the server answers 403 and logs why.

    >>> refusal("alice-lab", "alice-lab/anna") is None
    True
    >>> refusal("alice-lab", "operator")
    "certificate names 'operator', but its issuer, trusted as 'alice-lab', may vouch only for 'alice-lab' or 'alice-lab/...'"
"""

from __future__ import annotations

import re

SEPARATOR = "/"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def scope(trusted_as: str | None) -> str:
    """The names an entry vouches for, as people read it (``None`` is the server's own CA)."""
    return "any name it signed" if trusted_as is None else f"{trusted_as!r} or {trusted_as + SEPARATOR + '...'!r}"


def refusal(trusted_as: str | None, name: str | None) -> str | None:
    """Why a certificate naming ``name`` does not authenticate under the trust entry ``trusted_as``.

    ``trusted_as`` is the client trust entry's name, or None for the server's own CA. None means the
    name is vouched for.
    """
    if not name:
        return "certificate has no common name, so it names nobody"
    if trusted_as is None:
        return None
    if name == trusted_as:
        return None
    prefix = trusted_as + SEPARATOR
    if name.startswith(prefix):
        parts = name[len(prefix):].split(SEPARATOR)
        if all(_PART.match(part) for part in parts):
            return None
        return (f"certificate names {name!r}: each part after {prefix!r} must be 1-64 letters, digits, "
                "'.', '_', '@' or '-', starting with a letter or digit")
    return (f"certificate names {name!r}, but its issuer, trusted as {trusted_as!r}, "
            f"may vouch only for {scope(trusted_as)}")
