"""Configuration: typed settings read from the environment (blocks, when saved, win)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class KBSettings(BaseSettings):
    """Where the ledger and roster live, and how long to wait for a held ledger."""

    model_config = SettingsConfigDict(env_prefix="KB_", extra="ignore")

    ledger: Path = Field(Path("data/kb.duckdb"), description="DuckDB ledger file (KB_LEDGER).")
    creators: Path = Field(Path("creators.yaml"), description="Roster file (KB_CREATORS).")
    ledger_wait_seconds: float = Field(
        30.0, ge=0, description="How long a writer waits for another process to release the file."
    )


class YouTubeOptions(BaseModel):
    """How kb talks to YouTube: languages, politeness, proxy and circuit breaker."""

    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["en"],
        min_length=1,
        description="Transcript languages in order of preference.",
    )
    pause_seconds: float = Field(
        1.0, ge=0, description="Pause between transcript requests, to stay under YouTube's radar."
    )
    breaker_threshold: int = Field(
        5, ge=1, description="Consecutive blocked requests after which a run stops asking YouTube."
    )
    retry_base_hours: float = Field(
        6.0, gt=0, description="Delay before a blocked video is retried; doubles on each block."
    )
    proxy_url: SecretStr | None = Field(
        None,
        description="Proxy for every YouTube request (http://user:pass@host:port). "
        "Without it the standard HTTPS_PROXY / NO_PROXY variables apply.",
    )
    feed_concurrency: int = Field(8, ge=1, le=64, description="Channel feeds read at once.")
    feed_retries: int = Field(3, ge=0, le=10, description="Retries of a failing channel feed.")
    feed_retry_delay_seconds: float = Field(
        2.0, ge=0, description="First delay between feed retries; doubles on each retry."
    )
    data_api_key: SecretStr | None = Field(
        None,
        description="YouTube Data API key; when set, gaps in a feed are filled by paging uploads.",
    )
    gap_fill_max_videos: int = Field(
        200, ge=0, description="Most videos one gap fill may add for one creator."
    )

    @field_validator("languages", mode="before")
    @classmethod
    def _split_language_list(cls, value: object) -> object:
        """Accept "de,en" from the environment as well as a list."""
        if isinstance(value, str):
            return [code.strip() for code in value.split(",") if code.strip()]
        return value


class YouTubeEnvSettings(YouTubeOptions, BaseSettings):
    """YouTubeOptions from KB_YOUTUBE_* variables (the Data API key also from YOUTUBE_API_KEY)."""

    model_config = SettingsConfigDict(env_prefix="KB_YOUTUBE_", extra="ignore")

    data_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("YOUTUBE_API_KEY", "KB_YOUTUBE_DATA_API_KEY")
    )
