"""Who may see and do what: the one policy every portal route and API call goes through.

Pure: a `Principal` (the logged-in user as the portal knows them) and a question. The
portal's route table names one `Need` per route; `allowed` answers it, and `sees`
answers "may this person see this practice's data" wherever a record is loaded.

- operator: every practice, including calls to numbers no practice claims;
- practice admin: their practice, read and change (overrides, retries);
- front desk: their practice, read only;
- clinician: their practice's calls, and acknowledging the call-backs waiting for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ivr.db.kinds import Role


class Need(StrEnum):
    """What a route needs of the person asking (one per route)."""

    NOTHING = "nothing"  # the login page, static files, health
    LOGIN = "login"  # any logged-in person (their own account page, log out)
    READ = "read"  # read the data of the practices they see
    ACKNOWLEDGE = "acknowledge"  # take a call-back (clinicians, admins, operators)
    CHANGE = "change"  # change a practice's state: overrides, delivery retries
    AUDIT = "audit"  # read the audit log (operators and practice admins)
    METRICS = "metrics"  # scrape /metrics: counts over every practice (operators only)


_GRANTS: dict[Role, frozenset[Need]] = {
    Role.OPERATOR: frozenset(Need),
    Role.PRACTICE_ADMIN: frozenset(Need) - {Need.METRICS},
    Role.FRONT_DESK: frozenset({Need.NOTHING, Need.LOGIN, Need.READ}),
    Role.CLINICIAN: frozenset({Need.NOTHING, Need.LOGIN, Need.READ, Need.ACKNOWLEDGE}),
}


@dataclass(frozen=True)
class Principal:
    """The person behind a request: who, in which role, for which practice."""

    user_id: str
    username: str
    role: Role
    practice_id: str | None  # None only for an operator
    clinician_id: str | None = None
    via: str = "web"  # web (a session) | api (a bearer token)

    @property
    def actor(self) -> str:
        """How the audit log names them: web:<username> or api:<username>."""
        return f"{self.via}:{self.username}"

    @property
    def all_practices(self) -> bool:
        return self.role == Role.OPERATOR


def allowed(who: Principal, need: Need) -> bool:
    return need in _GRANTS.get(who.role, frozenset())


def sees(who: Principal, practice_id: str | None) -> bool:
    """May `who` see the data of this practice (None: a call no practice claims)?"""
    if who.all_practices:
        return True
    return practice_id is not None and practice_id == who.practice_id


def scope(who: Principal, wanted: str | None = None) -> list[str] | None:
    """The practice ids a query is limited to (None: no limit, an operator asking for all).

    A practice filter the person may not see gives an empty list: nothing, not an error,
    so a list page never says whether another practice has data.
    """
    if who.all_practices:
        return None if wanted is None else [wanted]
    own = [who.practice_id] if who.practice_id else []
    return own if wanted is None or wanted in own else []


def check_role(role: str, practice_id: str | None, clinician_id: str | None) -> Role:
    """The role of a new account, checked against its practice (ValueError says why)."""
    try:
        value = Role(role)
    except ValueError:
        raise ValueError(f"role {role!r}: expected one of "
                         f"{', '.join(r.value for r in Role)}") from None
    if value == Role.OPERATOR and practice_id:
        raise ValueError("an operator sees every practice: give no --practice")
    if value != Role.OPERATOR and not practice_id:
        raise ValueError(f"a {value.value} belongs to one practice: give --practice")
    if value == Role.CLINICIAN and not clinician_id:
        raise ValueError("a clinician account names the rules' clinician: give --clinician")
    if value != Role.CLINICIAN and clinician_id:
        raise ValueError("--clinician is only for the clinician role")
    return value
