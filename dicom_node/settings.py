"""The one settings object of the node, read from ``config.yaml``.

The listener, the workers, Celery and Alembic all call :func:`load_settings`; nothing
else reads configuration. Every key has an embedded default, so the node runs with no
file at all: SQLite under ``./var``, an in-process queue, a local spool, CPU.

Where the file comes from: the ``--config`` option, else the environment variable
``KNEE_NODE_CONFIG``, else no file (embedded defaults). Any key may be overridden from the
environment as ``KNEE_NODE_<SECTION>__<KEY>`` (e.g. ``KNEE_NODE_DATABASE__PASSWORD``), which
is how secrets stay out of the file.

Relative paths written in the config file (``storage.*_dir``, ``node.tls.*_file``, a
``sqlite:///relative`` database URL) are resolved against the folder of that file, so
``knee-node status --config /srv/knee/config.yaml`` finds the same ``data_dir: var`` from
any directory. Embedded defaults and environment overrides stay relative to the current
directory.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from dicom_node.errors import ConfigError
from dicom_node.spool import FileModes

CONFIG_ENV = "KNEE_NODE_CONFIG"
ENV_PREFIX = "KNEE_NODE_"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 16 chars, no backslash


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_ae_title(value: str) -> str:
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError(f"AE title must be 1-16 printable characters without '\\', got {value!r}")
    return value.strip()


class AllowedCaller(_Section):
    """A peer allowed to open an association: AE title and the networks it may come from."""

    ae_title: str = Field("*", description="calling AE title, or '*' for any")
    addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="IP networks (CIDR) the caller may connect from",
    )

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        return v if v == "*" else _check_ae_title(v)

    @field_validator("addresses")
    @classmethod
    def _nets(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)  # raises ValueError naming the value
        return v

    def admits(self, ae_title: str, address: str) -> bool:
        """True if a caller with ``ae_title`` connecting from ``address`` matches this entry."""
        if self.ae_title != "*" and ae_title.strip() != self.ae_title:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.addresses)


class TLSSettings(_Section):
    """Optional TLS for the listener (and for destinations that ask for it)."""

    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _files(self) -> TLSSettings:
        if self.enabled and (self.cert_file is None or self.key_file is None):
            raise ValueError("tls.enabled needs cert_file and key_file")
        if self.require_client_cert and self.ca_file is None:
            raise ValueError("require_client_cert needs ca_file")
        return self


class LimitSettings(_Section):
    """Association limits of the listener."""

    max_associations: int = Field(10, ge=1, le=1000)
    acse_timeout_s: float = Field(30.0, gt=0)
    dimse_timeout_s: float = Field(60.0, gt=0)
    network_timeout_s: float = Field(60.0, gt=0)
    max_pdu_size: int = Field(
        262144, ge=0, description="bytes; 0 means unlimited (pynetdicom convention)"
    )
    association_request_deadline_s: float = Field(
        10.0,
        gt=0,
        description="total time from TCP connect to a complete A-ASSOCIATE-RQ; a trickle "
        "cannot extend it",
    )
    max_pending_connections: int = Field(
        16,
        ge=1,
        le=1000,
        description="connections not yet admitted (no A-ASSOCIATE-RQ checked yet); when "
        "full, the oldest is closed. Separate from max_associations, which counts only "
        "admitted callers",
    )
    pdu_deadline_s: float = Field(
        10.0, gt=0, description="base time allowed to receive one PDU once it has begun"
    )
    min_receive_rate_bytes_s: int = Field(
        32768,
        ge=1,
        description="a PDU must arrive at least this fast: its deadline is pdu_deadline_s "
        "+ length / rate",
    )
    max_decoded_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        description="largest decoded instance: Rows x Columns x frames x samples x bytes "
        "per sample, and the bytes a deflated dataset may inflate to",
    )

    @field_validator("max_pdu_size")
    @classmethod
    def _pdu(cls, v: int) -> int:
        if v != 0 and v < 4096:
            raise ValueError(f"max_pdu_size must be 0 (unlimited) or >= 4096, got {v}")
        return v


class NodeSettings(_Section):
    """The listening application entity."""

    ae_title: str = "KNEE_NODE"
    host: str = "127.0.0.1"
    port: int = Field(11112, ge=0, le=65535)
    allowed_callers: list[AllowedCaller] = Field(default_factory=lambda: [AllowedCaller()])
    limits: LimitSettings = LimitSettings()
    tls: TLSSettings = TLSSettings()

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: _check_ae_title(v)))

    def admits(self, ae_title: str, address: str) -> bool:
        """True if any allowed-caller entry admits this peer."""
        return any(c.admits(ae_title, address) for c in self.allowed_callers)


class StorageSettings(_Section):
    """Where received instances and results are written."""

    data_dir: Path = Path("var")
    spool_dir: Path | None = Field(None, description="default: <data_dir>/spool")
    results_dir: Path | None = Field(None, description="default: <data_dir>/results")
    keep_source: bool = Field(False, description="keep measured source instances after success")
    group: str | None = Field(
        None,
        description="group given read access to spool and results (files 0640, folders "
        "0750), e.g. for a PACS-side reader; default none (0600/0700)",
    )
    ignored_retention_h: float = Field(
        24.0,
        ge=0,
        description="hours `knee-node purge` keeps rows of ignored/rejected/duplicate instances",
    )

    @field_validator("group")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        FileModes.for_group(v)  # raises ValueError naming the group
        return v

    @property
    def modes(self) -> FileModes:
        """Permissions of everything the node writes (set explicitly, not by the umask)."""
        return FileModes.for_group(self.group)

    @property
    def spool(self) -> Path:
        return self.spool_dir if self.spool_dir is not None else self.data_dir / "spool"

    @property
    def results(self) -> Path:
        return self.results_dir if self.results_dir is not None else self.data_dir / "results"


class DatabaseSettings(_Section):
    """SQLAlchemy database URL; the password may come from KNEE_NODE_DATABASE__PASSWORD."""

    url: str | None = Field(None, description="default: sqlite:///<data_dir>/knee-node.sqlite")
    password: SecretStr | None = None
    auto_migrate: bool = Field(
        True, description="`serve` upgrades the schema to head on start (else refuses if behind)"
    )
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
            raise ValueError(f"url must be a sqlite:// or postgresql+psycopg:// URL, got {v!r}")
        return v


class QueueSettings(_Section):
    """Job queue: in-process thread (embedded default) or Celery with Redis."""

    backend: Literal["inprocess", "celery"] = "inprocess"
    broker_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "knee_node"
    worker_pool: Literal["solo", "prefork", "threads"] = "solo"
    worker_concurrency: int = Field(1, ge=1, le=64)
    worker_name: str = Field(
        "celery@%h", pattern=r"^[\w.%-]+@[\w.%-]+$", description="Celery node name; %h = host"
    )
    soft_time_limit_s: float = Field(120.0, gt=0)
    time_limit_s: float = Field(180.0, gt=0)
    visibility_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="Redis: a task taken by a worker that died is redelivered after this",
    )

    @property
    def delivery_queue_name(self) -> str:
        """Celery queue of the delivery tasks; workers take from it before ``queue_name``."""
        return f"{self.queue_name}.deliveries"

    @model_validator(mode="after")
    def _limits(self) -> QueueSettings:
        if self.time_limit_s <= self.soft_time_limit_s:
            raise ValueError("time_limit_s must be greater than soft_time_limit_s")
        if self.visibility_timeout_s <= self.time_limit_s:
            raise ValueError(
                "visibility_timeout_s must be greater than time_limit_s "
                "(else a task still running is delivered to a second worker)"
            )
        return self


class ModelSettings(_Section):
    """Which measurer each study kind's workers load (once per process, lazily)."""

    factory: str | None = Field(
        None,
        description="'module:callable' taking (ModelSettings) and returning the knee-ap "
        "Measurer (the key from before study kinds; same as factories.knee-ap)",
    )
    factories: dict[str, str] = Field(
        default_factory=dict,
        description="study kind -> 'module:callable' of its measurer (default: the kind's)",
    )
    device: str = "cpu"
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads per worker; null: all CPUs but one (at least 1) for "
        "the in-process worker of `serve`, torch's default for a Celery worker",
    )
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("factory")
    @classmethod
    def _factory(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[\w.]+:\w+$", v):
            raise ValueError(f"factory must look like 'package.module:callable', got {v!r}")
        return v

    @field_validator("factories")
    @classmethod
    def _factories(cls, v: dict[str, str]) -> dict[str, str]:
        for kind, factory in v.items():
            _check_kind(kind)
            if not re.match(r"^[\w.]+:\w+$", factory):
                raise ValueError(
                    f"factories.{kind} must look like 'package.module:callable', got {factory!r}"
                )
        return v

    def factory_for(self, kind: str, default: str) -> str:
        """The measurer factory of study kind ``kind`` (``default``: the kind's own)."""
        if kind in self.factories:
            return self.factories[kind]
        if kind == "knee-ap" and self.factory is not None:
            return self.factory
        return default


def _check_kind(name: str) -> str:
    """``name`` if it is a registered study kind, else ValueError naming the known ones."""
    from dicom_node import kinds

    known = kinds.names()
    if name not in known:
        raise ValueError(f"unknown study kind {name!r}; known kinds: {', '.join(known)}")
    return name


class RoutingRule(_Section):
    """One rule: an instance matching every given field is measured as study ``kind``."""

    name: str
    kind: str = Field("knee-ap", description="the study kind measured (dicom_node.kinds)")
    modalities: list[str] = Field(default_factory=lambda: ["CR", "DX"])
    body_parts: list[str] = Field(
        default_factory=lambda: ["KNEE", "LEG", "LOWER LIMB", "LOWERLIMB"]
    )
    view_positions: list[str] = Field(default_factory=lambda: ["AP", "PA"])
    allow_missing_body_part: bool = False
    allow_missing_view_position: bool = False
    series_description: str | None = Field(None, description="regex (case-insensitive, search)")
    study_description: str | None = Field(None, description="regex (case-insensitive, search)")
    description: str | None = Field(
        None,
        description="regex (case-insensitive, search) that SeriesDescription, "
        "StudyDescription or ProtocolName must match (any one of them)",
    )
    min_rows: int | None = Field(None, ge=1, description="least Rows (pixels)")
    min_aspect: float | None = Field(None, gt=0, description="least Rows / Columns")
    max_aspect: float | None = Field(None, gt=0, description="greatest Rows / Columns")
    min_height_mm: float | None = Field(
        None,
        gt=0,
        description="least image height in mm: Rows x row spacing of PixelSpacing "
        "(ImagerPixelSpacing when PixelSpacing is absent)",
    )

    _kind = field_validator("kind")(classmethod(lambda cls, v: _check_kind(v)))

    @model_validator(mode="after")
    def _aspects(self) -> RoutingRule:
        if (
            self.min_aspect is not None
            and self.max_aspect is not None
            and self.min_aspect > self.max_aspect
        ):
            raise ValueError(
                f"min_aspect ({self.min_aspect}) must not exceed max_aspect ({self.max_aspect})"
            )
        return self

    @field_validator("series_description", "study_description", "description")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v


#: The study kind the default long-leg rules route to (registered by dicom_node/kinds/full_leg.py).
FULL_LEG_KIND = "full-leg"
#: Body parts a long-leg radiograph is sent with (ap-pa-knee takes LEG/LOWER LIMB too).
_LONG_LEG_BODY_PARTS = ["LEG", "LOWER LIMB", "LOWERLIMB", "EXTREMITY"]
#: Descriptions that say "long-leg": full leg, long leg, hip to ankle, standing, lower limbs.
LONG_LEG_DESCRIPTION = (
    r"full[\s_-]*legs?|long[\s_-]*legs?|hip[\s_-]*(to|-)?[\s_-]*ankle|standing"
    r"|lower[\s_-]*limbs|whole[\s_-]*leg|scanogram"
)


def default_rules() -> list[RoutingRule]:
    """The routing rules used when the configuration names none.

    ``full-leg-description`` (a long-leg description) and ``full-leg-tall-image`` (Rows /
    Columns >= 2 and at least 600 mm high) come first, **only when the ``full-leg`` kind
    is registered**; then ``ap-pa-knee`` (kind ``knee-ap``), unchanged. A knee image sent
    with BodyPartExamined LEG, a knee description and a knee-sized field still goes to
    ``knee-ap``: the body part alone does not make a study long-leg.
    """
    from dicom_node import kinds

    rules: list[RoutingRule] = []
    if FULL_LEG_KIND in kinds.names():
        common: dict[str, Any] = {
            "kind": FULL_LEG_KIND,
            "body_parts": _LONG_LEG_BODY_PARTS,
            "allow_missing_body_part": True,
        }
        rules.append(
            RoutingRule(name="full-leg-description", description=LONG_LEG_DESCRIPTION, **common)
        )
        rules.append(
            RoutingRule(name="full-leg-tall-image", min_aspect=2.0, min_height_mm=600.0, **common)
        )
    rules.append(RoutingRule(name="ap-pa-knee"))
    return rules


class RoutingSettings(_Section):
    """Routing: which received instances to measure, and as which study kind."""

    rules: list[RoutingRule] = Field(default_factory=default_rules)


def _destination_type(value: Any) -> str:
    """The ``type`` of a destination entry (``dimse`` when it names none)."""
    from dicom_node.destinations import DEFAULT_TYPE

    if isinstance(value, dict):
        return str(value.get("type", DEFAULT_TYPE))
    return str(getattr(value, "type", DEFAULT_TYPE))


def _destination_union() -> Any:
    """``delivery.destinations`` entries: the union of every transport's model, told apart
    by ``type`` (dicom_node.destinations)."""
    from dicom_node.destinations import transports

    members = tuple(Annotated[t.model, Tag(name)] for name, t in sorted(transports().items()))
    return Annotated[Union[members], Discriminator(_destination_type)]  # noqa: UP007


#: A destination of any transport (``type: dimse`` by default).
if TYPE_CHECKING:
    from dicom_node.destinations import DestinationBase as Destination
else:
    Destination = _destination_union()


class DeliverySettings(_Section):
    """Where results go and how sending is retried."""

    destinations: list[Destination] = Field(
        default_factory=list,
        description="where results go; each entry's type (default dimse) picks its transport",
    )
    calling_ae_title: str | None = Field(None, description="default: node.ae_title")
    max_attempts: int = Field(6, ge=1, le=100)
    backoff_initial_s: float = Field(5.0, ge=0)
    backoff_factor: float = Field(2.0, ge=1.0)
    backoff_max_s: float = Field(600.0, ge=0)
    sweep_interval_s: float = Field(
        30.0,
        gt=0,
        description="how often the node looks for deliveries nobody is working on (left "
        "'retrying' by `resend`, or by a process that died) and takes them over",
    )

    @field_validator("destinations")
    @classmethod
    def _known_objects(cls, v: list[Any]) -> list[Any]:
        """Each destination's ``objects`` names object kinds some study kind writes."""
        from dicom_node import kinds

        known = {w.object_kind for k in kinds.registry().values() for w in k.writers}
        for d in v:
            unknown = [o for o in (d.objects or ()) if o not in known]
            if unknown:
                raise ValueError(
                    f"destination {d.name!r}: objects {unknown} are written by no study "
                    f"kind; known: {', '.join(sorted(known))}"
                )
        return v

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        return float(
            min(self.backoff_max_s, self.backoff_initial_s * self.backoff_factor ** (attempt - 1))
        )


class ReportSettings(_Section):
    """Fields written into the SR and SC."""

    institution_name: str | None = None
    device_observer_name: str = "knee-node"
    device_observer_uid: str | None = Field(None, description="default: derived from ae_title")
    sr_series_number: int = Field(9901, ge=1)
    sc_series_number: int = Field(9902, ge=1)
    pr_series_number: int = Field(
        9903, ge=1, description="series number of the GSPS (sent to destinations that "
        "list GSPS in their objects)"
    )
    sc_transfer_syntax: Literal[
        "jpeg-ls-lossless-palette", "jpeg2000-lossless", "jpeg-ls-lossless", "rle-lossless",
        "explicit", "jpeg-baseline"
    ] = Field(
        "jpeg-ls-lossless-palette",
        description="encoding of the SC overlay: lossless JPEG-LS of the 8-bit PALETTE COLOR "
        "overlay (one sample per pixel: about 3x smaller than JPEG-LS RGB, the SC built in "
        "about half the time: `knee-node bench reports`), lossless JPEG-LS RGB, lossless JPEG 2000 "
        "(YBR_RCT, slowest) or RLE; explicit (uncompressed RGB); jpeg-baseline is lossy. "
        "Sent uncompressed to a peer that does not accept it",
    )


class LoggingSettings(_Section):
    """Log level of the node (INFO never carries patient name, ID or birth date)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = Field("text", description="text lines or JSON lines")


class MetricsSettings(_Section):
    """Prometheus ``/metrics`` and ``/healthz`` of ``knee-node serve`` (dicom_node.metrics)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9102, ge=0, le=65535)


class StatusSettings(_Section):
    """What ``knee-node status`` shows to map a job to its study (never patient data)."""

    show_accession_number: bool = Field(
        False, description="show each job's Accession Number (read from its SR file)"
    )


class Settings(_Section):
    """Everything the node reads; see ``config.example.yaml`` for each key."""

    node: NodeSettings = NodeSettings()
    storage: StorageSettings = StorageSettings()
    database: DatabaseSettings = DatabaseSettings()
    queue: QueueSettings = QueueSettings()
    model: ModelSettings = ModelSettings()
    routing: RoutingSettings = RoutingSettings()
    delivery: DeliverySettings = DeliverySettings()
    reports: ReportSettings = ReportSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    status: StatusSettings = StatusSettings()

    @model_validator(mode="after")
    def _visibility(self) -> Settings:
        q = self.queue
        if q.backend == "celery" and q.visibility_timeout_s <= self.delivery.backoff_max_s:
            raise ValueError(
                "queue.visibility_timeout_s must be greater than delivery.backoff_max_s "
                "(a delivery retry waiting longer would be delivered twice)"
            )
        return self

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, password from the settings or environment filled in."""
        from sqlalchemy.engine import make_url

        if self.database.url is None:
            return f"sqlite:///{(self.storage.data_dir / 'knee-node.sqlite').resolve()}"
        url = make_url(self.database.url)
        if self.database.password is not None:
            url = url.set(password=self.database.password.get_secret_value())
        return url.render_as_string(hide_password=False)

    @property
    def device_observer_uid(self) -> str:
        """Stable Device Observer UID of this node (from config or derived from the AE title)."""
        from pydicom.uid import generate_uid

        if self.reports.device_observer_uid is not None:
            return self.reports.device_observer_uid
        return str(generate_uid(entropy_srcs=["knee-node", self.node.ae_title]))


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``KNEE_NODE_SECTION__KEY=value`` -> ``{"section": {"key": value}}`` (YAML-parsed value)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = raw if path[-1] == "password" else yaml.safe_load(raw)
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def format_errors(exc: ValidationError) -> list[str]:
    """One line per bad key: ``dotted.key.path: why``."""
    from dicom_node.destinations import transports

    tags = set(transports())
    lines = []
    for err in exc.errors():
        parts = list(err["loc"])
        # a destination's loc holds its union tag after the index: drop it (the key is
        # delivery.destinations.0.ae_title, whatever the type)
        parts = [
            p for i, p in enumerate(parts)
            if not (p in tags and i >= 1 and isinstance(parts[i - 1], int))
        ]
        loc = ".".join(str(p) for p in parts) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{loc}: {msg}")
    return lines


def read_config_dict(path: Path | None) -> dict[str, Any]:
    """The YAML mapping in ``path`` (empty if ``path`` is None)."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def config_path(explicit: Path | str | None = None) -> Path | None:
    """The config file to read: ``explicit``, else ``$KNEE_NODE_CONFIG``, else None."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None


def _secrets_in(data: dict[str, Any]) -> list[str]:
    """Dotted keys of ``data`` (a config mapping) that hold a secret."""
    found = []
    db = data.get("database")
    db = db if isinstance(db, dict) else {}
    q = data.get("queue")
    q = q if isinstance(q, dict) else {}
    if db.get("password"):
        found.append("database.password")
    urls = [("database.url", db.get("url")), ("queue.broker_url", q.get("broker_url"))]
    for key, url in urls:
        if isinstance(url, str) and re.match(r"^[\w+]+://[^/@]*:[^/@]+@", url):
            found.append(key)  # scheme://user:password@host
    return found


def secret_file_warnings(path: Path | str, data: dict[str, Any]) -> list[str]:
    """Warnings for a config file that holds secrets but others may read.

    Secrets belong in the environment (``KNEE_NODE_DATABASE__PASSWORD``...) or in a file
    only its owner can read (mode 0600 or stricter).

    Parameters
    ----------
    path
        The config file.
    data
        Its parsed content.
    """
    secrets = _secrets_in(data)
    if not secrets:
        return []
    mode = Path(path).stat().st_mode & 0o777
    if mode & 0o077 == 0:
        return []
    return [
        f"{path} holds a secret ({', '.join(secrets)}) but its mode is {mode:04o}: "
        "readable by others; chmod 600 it, or give the secret in the environment "
        "(e.g. KNEE_NODE_DATABASE__PASSWORD)"
    ]


#: Keys of the config file holding a path, as (section, ..., key).
PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("storage", "data_dir"),
    ("storage", "spool_dir"),
    ("storage", "results_dir"),
    ("node", "tls", "cert_file"),
    ("node", "tls", "key_file"),
    ("node", "tls", "ca_file"),
)


def resolve_relative_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``data`` (a config mapping) with its relative paths made absolute against ``base``.

    Covers :data:`PATH_KEYS` and a ``sqlite:///relative/file`` ``database.url``.
    """
    out = copy.deepcopy(data)
    for keys in PATH_KEYS:
        node: Any = out
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
        else:
            value = node.get(keys[-1])
            if isinstance(value, str) and value and not Path(value).is_absolute():
                node[keys[-1]] = str((base / value).resolve())
    db = out.get("database")
    url = db.get("url") if isinstance(db, dict) else None
    if isinstance(db, dict) and isinstance(url, str) and url.startswith("sqlite"):
        m = re.match(r"^(sqlite(\+\w+)?:///)([^/].*)$", url)
        if m and m.group(3) != ":memory:":
            db["url"] = m.group(1) + str((base / m.group(3)).resolve())
    return out


def load_settings(
    path: Path | str | None = None, *, environ: dict[str, str] | None = None
) -> Settings:
    """Read and validate the settings.

    Parameters
    ----------
    path
        YAML file; None means ``$KNEE_NODE_CONFIG`` or, if unset, embedded defaults.
    environ
        Environment for ``KNEE_NODE_<SECTION>__<KEY>`` overrides (default ``os.environ``).

    Logs a warning if the file holds a secret and is readable by group or others.

    Raises
    ------
    ConfigError
        Naming every bad key and why.
    """
    file = config_path(path)
    from_file = read_config_dict(file)
    if file is not None:
        from_file = resolve_relative_paths(from_file, Path(file).resolve().parent)
        for warning in secret_file_warnings(file, from_file):
            logging.getLogger(__name__).warning("%s", warning)
    data = _merge(from_file, _env_overrides(dict(os.environ if environ is None else environ)))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = str(file) if file is not None else "settings"
        raise ConfigError(f"{where}:\n  " + "\n  ".join(format_errors(exc))) from None
