"""Every error kb raises on purpose; each message says what is wrong and what to do next.

KBError
├── SettingsError            a configuration value is impossible
├── RosterError              the roster file or a creator in it is malformed
├── ChannelNotResolved       a @handle or channel URL names no channel
├── FeedUnavailable          a channel feed could not be read this time
├── GapFillFailed            the Data API could not page a channel's uploads
├── InvalidWeek              a week not written like 2026-W47 (also a ValueError)
├── PrefectUnavailable       the configured Prefect API does not answer
├── LedgerError              the ledger cannot be used as it is
│   ├── LedgerLocked         another process holds the file past the wait bound
│   └── SchemaTooNew         a newer kb migrated the file
├── ModelCallFailed          a model call failed (`call` is its record, or None)
│   ├── LocalUnavailable     Ollama could not be reached or failed to answer
│   │   └── LocalModelMissing    Ollama runs but lacks the model
│   └── CloudUnavailable     Anthropic could not answer (down, overloaded, rate limited)
│       ├── CloudKeyRejected     the key was refused: no use asking again this run
│       └── BudgetExhausted      the call would take the week past its cloud budget
├── BudgetError              a budget record cannot be changed as asked
├── BatchError               a Message Batch cannot be sent or read as kb expects
│   └── BatchNotFound        Anthropic no longer knows the batch (404)
├── NoModelAnswered          a prompt that no model could answer
└── KnowledgeError           the knowledge base cannot answer what was asked
    ├── VideoNotFound        no video with that id in the ledger
    ├── VideoNotAnalysed     the video has no analysis yet
    ├── EmptyKnowledgeBase   nothing analysed or indexed yet
    ├── BadQuery             a query, filter or date that cannot be used as given
    ├── ExportFailed         the export directory cannot be written; nothing was written
    └── EmbeddingUnavailable Ollama cannot embed now: search ranks by full text alone
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from creatorkb.calls import ModelCall

__all__ = [
    "BadQuery",
    "BatchError",
    "BatchNotFound",
    "BudgetError",
    "BudgetExhausted",
    "ChannelNotResolved",
    "CloudKeyRejected",
    "CloudUnavailable",
    "EmbeddingUnavailable",
    "EmptyKnowledgeBase",
    "ExportFailed",
    "FeedUnavailable",
    "GapFillFailed",
    "InvalidWeek",
    "KBError",
    "KnowledgeError",
    "LedgerError",
    "LedgerLocked",
    "LocalModelMissing",
    "LocalUnavailable",
    "ModelCallFailed",
    "NoModelAnswered",
    "PrefectUnavailable",
    "RosterError",
    "SchemaTooNew",
    "SettingsError",
    "VideoNotAnalysed",
    "VideoNotFound",
]


class KBError(Exception):
    """Base class for every error kb raises on purpose."""


class SettingsError(KBError):
    """A configuration value is impossible."""


class RosterError(KBError):
    """The creators roster file is malformed or names an invalid creator."""


class ChannelNotResolved(KBError):
    """A @handle or channel URL could not be turned into a channel id."""


class FeedUnavailable(KBError):
    """The feed could not be read this time (HTTP error or network); worth retrying."""

    def __init__(self, channel_id: str, detail: str, status: int | None = None) -> None:
        self.channel_id = channel_id
        self.status = status
        super().__init__(f"feed of {channel_id} unavailable: {detail}")


class GapFillFailed(KBError):
    """The YouTube Data API refused or failed to page a channel's uploads."""


class InvalidWeek(KBError, ValueError):
    """A week that is not written like 2026-W47, or that its year does not have."""


class PrefectUnavailable(KBError):
    """The Prefect API kb was pointed at does not answer."""


class LedgerError(KBError):
    """The ledger file cannot be used as it is."""


class LedgerLocked(LedgerError):
    """Another process holds the DuckDB file past the wait bound."""

    def __init__(self, path: Path, holder: str, waited_s: float, spooled: int = 0) -> None:
        self.path = path
        self.holder = holder
        self.waited_s = waited_s
        self.spooled = spooled
        kept = (
            f" {spooled} pending write batch(es) were kept and will be written by the next run."
            if spooled
            else ""
        )
        super().__init__(
            f"ledger {path} is held by another process ({holder}); gave up after "
            f"{waited_s:.1f}s. Close that connection (a notebook?) or raise "
            f"KB_LEDGER_WAIT_SECONDS.{kept}"
        )


class SchemaTooNew(LedgerError):
    """The ledger was migrated by a newer kb than this one."""

    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            f"ledger {path} is at schema version {found}, but this kb knows versions up to "
            f"{known}. Upgrade creatorkb before using this ledger; it was not modified."
        )


class BatchError(KBError):
    """A Message Batch cannot be sent or read as kb expects; the message names it."""


class BatchNotFound(BatchError):
    """Anthropic answers 404 for a batch kb sent: its results cannot be read any more."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(
            f"Message Batch {batch_id} is not found at Anthropic (404): it was deleted or its "
            "results expired (they are kept 29 days); its items follow the policy's "
            "when_batch_fails, and their reservations stay open as possibly billed "
            "(`kb ledger unanswered`)"
        )


class ModelCallFailed(KBError):
    """A model call failed; `call` is its record (with the error type) for the ledger, or
    None when no generation was attempted (the server could not even be asked)."""

    def __init__(self, message: str, call: ModelCall | None = None) -> None:
        super().__init__(message)
        self.call = call


class LocalUnavailable(ModelCallFailed):
    """Ollama could not be reached or failed to answer."""


class LocalModelMissing(LocalUnavailable):
    """Ollama runs but lacks the model: that model's work cannot be done locally."""

    def __init__(self, host: str, model: str, installed: list[str] | None = None) -> None:
        has = f"; it has: {', '.join(installed) or 'none'}" if installed is not None else ""
        super().__init__(
            f"Ollama at {host} has no model {model!r}{has}. Run `ollama pull {model}`, or "
            "name an installed model in KB_OLLAMA_DRAFT_MODEL / KB_OLLAMA_MODELS (or the "
            "ollama-server block)"
        )
        self.model = model


class CloudUnavailable(ModelCallFailed):
    """Anthropic could not be reached, was overloaded or rate limited past the SDK's retries."""


class CloudKeyRejected(CloudUnavailable):
    """Anthropic refused the API key (401/403): no use asking again this run."""


class BudgetExhausted(CloudUnavailable):
    """This call would take the week's cloud spending past the budget."""


class BudgetError(KBError):
    """A budget record cannot be changed as asked (an unknown reservation, an impossible
    amount)."""


class NoModelAnswered(KBError):
    """Neither the local nor the cloud model could answer a prompt."""


class KnowledgeError(KBError):
    """The knowledge base cannot answer what was asked; the message says what would."""


class VideoNotFound(KnowledgeError):
    """No video with that id is in the ledger."""


class VideoNotAnalysed(KnowledgeError):
    """The video is in the ledger but has no analysis yet."""


class EmptyKnowledgeBase(KnowledgeError):
    """Nothing is analysed (or indexed) yet, so there is nothing to search or export."""


class BadQuery(KnowledgeError):
    """A search query, filter or date that cannot be used as given."""


class ExportFailed(KnowledgeError):
    """The export directory cannot be written as asked; nothing was written."""


class EmbeddingUnavailable(KnowledgeError):
    """Ollama cannot embed right now (down, or the embedding model is missing): search
    ranks by full text alone. `calls` are the requests made, for the ledger."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.calls: list[ModelCall] = []
