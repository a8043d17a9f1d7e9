"""The system account a cluster server runs as when we are root (Debian's packages make it)."""

from __future__ import annotations

import os
import pwd


class AccountError(RuntimeError):
    """The package's system user is missing; the message says which package makes it."""


def service_user(name: str, package: str) -> pwd.struct_passwd | None:
    """`name`'s passwd entry when running as root (servers refuse root or should not run as
    it); None otherwise: then the server runs as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise AccountError(f"the {name} system user is missing "
                           f"(apt-get install {package} makes it)") from None
