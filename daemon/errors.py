"""The one error taxonomy of the daemon's own layers (database, config, start-up)."""

from __future__ import annotations


class DenevaError(Exception):
    """Base of every error deneva raises on purpose; its message is safe to show."""


class ConfigError(DenevaError):
    """Bad configuration: the message names the key or file at fault."""


class SecretError(ConfigError):
    """A required secret is missing, unreadable or malformed (named, never shown)."""


class DatabaseError(DenevaError):
    """Something went wrong talking to Postgres."""


class DatabaseUnavailable(DatabaseError):
    """Postgres cannot be reached right now; retrying later may work."""


class UniqueViolation(DatabaseError):
    """A row with the same unique key exists."""


class QueryError(DatabaseError):
    """Postgres rejected a statement (a bug or bad data, not an outage)."""


class TransactionConflict(QueryError):
    """Postgres rolled the transaction back for a conflict with another (a deadlock, a
    serialization failure, a lock not available): the same work may succeed if retried."""


class MigrationError(DatabaseError):
    """A migration could not be applied or an applied one was edited."""


class EnvironmentMismatch(DenevaError):
    """The database belongs to another DENEVA_ENV (seed 003: preview must not touch production)."""


class EmbeddedPostgresError(DenevaError):
    """The embedded Postgres could not be found, initialised or started."""


def root_cause(exc: BaseException) -> BaseException:
    """Unwrap (trio's) exception groups down to the first meaningful error."""
    import trio

    while isinstance(exc, BaseExceptionGroup):
        exc = next((e for e in exc.exceptions if not isinstance(e, trio.Cancelled)), exc.exceptions[0])
    return exc
