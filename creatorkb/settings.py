"""Configuration: typed settings read from the environment (blocks, when saved, win)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from creatorkb.lake import is_lake


class KBSettings(BaseSettings):
    """Where the ledger and roster live, and how long to wait for a held ledger."""

    model_config = SettingsConfigDict(env_prefix="KB_", extra="ignore")

    ledger: Path = Field(
        Path("data/kb.duckdb"),
        description="DuckDB ledger file (KB_LEDGER), or a DuckLake: "
        "`ducklake:postgres:host=... dbname=kb` (its catalog in PostgreSQL).",
    )
    ledger_data_path: str | None = Field(
        None,
        description="Where a DuckLake ledger keeps its data files (KB_LEDGER_DATA_PATH): a "
        "directory or object store every machine reaches; needed when the lake is created.",
    )
    creators: Path = Field(Path("creators.yaml"), description="Roster file (KB_CREATORS).")
    reports: Path = Field(Path("reports"), description="Where weekly HTML reports are written.")
    ledger_wait_seconds: float = Field(
        30.0, ge=0, description="How long a writer waits for another process to release the file."
    )

    @property
    def ledger_exists(self) -> bool:
        """Whether there is a ledger to read (a lake: its catalog says the rest)."""
        return is_lake(self.ledger) or self.ledger.exists()


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


MAX_PARALLEL = 64  # requests one Ollama host is given at once, at most


def host_entry(entry: str) -> tuple[str, int | None]:
    """One KB_OLLAMA_HOSTS entry, `URL` or `URL=SLOTS`: the URL and its own slot count (None:
    the shared KB_OLLAMA_PARALLEL)."""
    url, equals, count = entry.strip().rpartition("=")
    if not equals:
        return count, None  # no "=": the whole entry is the URL
    if not url or not count.strip().isdigit() or not 1 <= int(count) <= MAX_PARALLEL:
        raise ValueError(
            f"host entry {entry!r} is not URL or URL=SLOTS: write it like "
            f"http://gpu1:11434=4 (SLOTS a whole number from 1 to {MAX_PARALLEL}, that host's "
            "OLLAMA_NUM_PARALLEL), or leave =SLOTS off to use KB_OLLAMA_PARALLEL"
        )
    return url.strip(), int(count)


class OllamaOptions(BaseModel):
    """The local model server."""

    host: str = Field("http://localhost:11434", description="Ollama's URL (OLLAMA_HOST).")
    hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Several Ollama servers (KB_OLLAMA_HOSTS, comma-separated); each call goes "
        "to the least busy one that has the model. An entry may carry its own slot count "
        "(`http://gpu1:11434=4`); without one a host has `parallel`. Empty: `host` alone.",
    )
    shared_slots: bool | None = Field(
        None,
        description="Hold each host's slots on the Prefect server (a global concurrency limit "
        "per host), shared by every process and machine using it (KB_OLLAMA_SHARED_SLOTS). "
        "Unset: shared when KB_OLLAMA_HOSTS is set, else counted per process (one machine).",
    )
    draft_model: str = Field("llama3.2", description="Model that drafts analyses.")
    models: list[str] = Field(
        default_factory=lambda: ["llama3.2", "qwen2.5:7b", "mistral"],
        min_length=1,
        description="Models used for consensus; the draft model should be one of them.",
    )
    parallel: int = Field(
        4,
        ge=1,
        le=MAX_PARALLEL,
        description="Requests each Ollama host serves at once (its OLLAMA_NUM_PARALLEL), unless "
        "its `hosts` entry gives its own.",
    )
    keep_alive: str = Field("10m", description="How long Ollama keeps a model loaded.")
    max_num_ctx: int = Field(
        16384, ge=2048, description="Largest context window kb asks for (memory grows with it)."
    )
    max_output_tokens: int = Field(2048, ge=256, description="num_predict for each answer.")
    timeout_seconds: float = Field(600.0, gt=0, description="Longest wait for one answer.")
    retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a failed local request (5xx, connection) before "
        "the work falls back.",
    )
    retry_delay_seconds: float = Field(
        0.5, ge=0, description="First delay between local retries; doubles on each retry."
    )
    reprobe_seconds: float = Field(
        30.0, ge=0, description="After Ollama is found down, how long until it is tried again."
    )

    @field_validator("hosts", mode="before")
    @classmethod
    def _split_host_list(cls, value: object) -> object:
        """Accept "http://gpu1:11434=4,http://gpu2:11434" from the environment."""
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @field_validator("hosts")
    @classmethod
    def _host_slots_readable(cls, hosts: list[str]) -> list[str]:
        """Every entry parses, and a host listed twice is not given two slot counts."""
        counts: dict[str, int | None] = {}
        for entry in hosts:
            url, slots = host_entry(entry)
            if url in counts and counts[url] != slots:
                raise ValueError(
                    f"{url} is listed twice with different slot counts; list each host once"
                )
            counts[url] = slots
        return hosts

    @property
    def slots_shared(self) -> bool:
        """Whether the slots are held on the Prefect server rather than in each process."""
        return bool(self.hosts) if self.shared_slots is None else self.shared_slots

    @property
    def host_list(self) -> list[str]:
        """Every Ollama server kb uses, in order (`hosts`, else `host`)."""
        return list(self.host_slots)

    @property
    def host_slots(self) -> dict[str, int]:
        """Every Ollama server kb uses, in order, with the requests it serves at once: its
        entry's own count, else `parallel`."""
        slots = {}
        for entry in self.hosts:
            url, count = host_entry(entry)
            slots.setdefault(url, count or self.parallel)
        return slots or {self.host: self.parallel}


class OllamaEnvSettings(OllamaOptions, BaseSettings):
    """OllamaOptions from KB_OLLAMA_* variables (the URL from OLLAMA_HOST)."""

    model_config = SettingsConfigDict(env_prefix="KB_OLLAMA_", extra="ignore")

    host: str = Field(
        "http://localhost:11434", validation_alias=AliasChoices("OLLAMA_HOST", "KB_OLLAMA_HOST")
    )


class AnthropicOptions(BaseModel):
    """Claude through the Anthropic API."""

    api_key: SecretStr | None = Field(None, description="Anthropic API key.")
    base_url: str | None = Field(None, description="API URL; the SDK's default when unset.")
    model: str = Field("claude-sonnet-5", description="Model for refinement and direct calls.")
    max_output_tokens: int = Field(4096, ge=256, le=21_000)
    cache_ttl: Literal["5m", "1h"] = Field(
        "5m", description="Lifetime of the cached system prompt and schema."
    )
    concurrency: int = Field(8, ge=1, le=64, description="Cloud requests in flight at once.")
    max_retries: int = Field(
        3, ge=0, le=10, description="SDK retries of 429/529/5xx (honouring retry-after)."
    )
    timeout_seconds: float = Field(120.0, gt=0, description="Longest wait for one answer.")


class AnthropicEnvSettings(AnthropicOptions, BaseSettings):
    """AnthropicOptions from KB_ANTHROPIC_* (key and URL from ANTHROPIC_API_KEY/_BASE_URL)."""

    model_config = SettingsConfigDict(env_prefix="KB_ANTHROPIC_", extra="ignore")

    api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    base_url: str | None = Field(None, validation_alias="ANTHROPIC_BASE_URL")


class CostOptions(BaseModel):
    """What the counterfactual and the local GPU cost: the basis of savings and ROI."""

    reference_model: str = Field(
        "claude-sonnet-5",
        description="Cloud model whose price every call is compared with (cloud_equivalent_usd).",
    )
    gpu_price_usd: Decimal = Field(Decimal("1200"), ge=0, description="What the GPU cost.")
    amortisation_months: int = Field(36, ge=1, description="Months over which it is written off.")
    projection_weeks: int = Field(
        4,
        ge=1,
        description="Complete weeks with data needed before the break-even month is projected.",
    )
    gpu_watts: Decimal = Field(Decimal("350"), ge=0, description="GPU power draw while answering.")
    gpu_idle_watts: Decimal = Field(
        Decimal("228"),
        ge=0,
        description="Draw of the GPU machine while on and not answering (228 W is the owner's "
        "plan: about $20 a month on 24/7 at $0.12/kWh).",
    )
    gpu_hours_per_week: Decimal = Field(
        Decimal("168"), ge=0, le=168, description="Hours a week the GPU machine is on (24/7: 168)."
    )
    usd_per_kwh: Decimal = Field(Decimal("0.12"), ge=0, description="Electricity price.")
    timezone: str = Field("UTC", description="Timezone of budget weeks and reports.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin"
            ) from None
        return value


class CostEnvSettings(CostOptions, BaseSettings):
    """CostOptions from KB_COST_* variables."""

    model_config = SettingsConfigDict(env_prefix="KB_COST_", extra="ignore")


class KnowledgeOptions(BaseModel):
    """How the knowledge base is searched: the embedding model and tool-name aliases."""

    embed_model: str = Field(
        "nomic-embed-text", description="Ollama model that embeds passages and queries."
    )
    query_prefix: str = Field(
        "search_query: ", description="Put before a query when it is embedded (nomic's task)."
    )
    document_prefix: str = Field(
        "search_document: ", description="Put before a passage when it is embedded."
    )
    ask_min_similarity: float = Field(
        0.6,
        ge=0,
        le=1,
        description="A passage only close in meaning (no word in common) must be at least "
        "this similar to a question to be given to the model that answers it.",
    )
    aliases: dict[str, str] = Field(
        default_factory=lambda: {
            "SDXL": "Stable Diffusion XL",
            "SD XL": "Stable Diffusion XL",
            "SD": "Stable Diffusion",
            "A1111": "AUTOMATIC1111",
            "Auto1111": "AUTOMATIC1111",
        },
        description="Other names of a tool or technique -> the name it is listed under.",
    )


class KnowledgeEnvSettings(KnowledgeOptions, BaseSettings):
    """KnowledgeOptions from KB_KNOWLEDGE_* variables (aliases as JSON)."""

    model_config = SettingsConfigDict(env_prefix="KB_KNOWLEDGE_", extra="ignore")
