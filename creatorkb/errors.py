"""The exceptions kb raises; each message says what is wrong and what to do next."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from creatorkb.calls import ModelCall


class KBError(Exception):
    """Base class for every error kb raises on purpose."""


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


class RosterError(KBError):
    """The creators roster file is malformed or names an invalid creator."""


class ChannelNotResolved(KBError):
    """A @handle or channel URL could not be turned into a channel id."""


class SettingsError(KBError):
    """A configuration value is impossible."""


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
