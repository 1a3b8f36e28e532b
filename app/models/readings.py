"""Meter readings (抄表读数) and the import batches that bring readings and master data in."""
import sqlalchemy as sa
from flask_appbuilder import Model
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import deferred, relationship

from app.models.base import Audited, MarketScoped, Quantity, TimestampMixin, UTCDateTime, enum_column
from app.models.enums import LabeledEnum


class ImportKind(LabeledEnum):
    readings = "readings"
    master = "master"

    @classmethod
    def _labels(cls):
        return {"readings": _("Meter readings"), "master": _("Master data")}


class ImportStatus(LabeledEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"

    @classmethod
    def _labels(cls):
        return {"pending": _("Waiting"), "running": _("Running"), "done": _("Finished"), "failed": _("Failed")}


class ImportBatch(MarketScoped, TimestampMixin, Model):
    """One uploaded file (or CLI run): its progress, counts and, until processed, its bytes."""

    __tablename__ = "import_batches"

    id = sa.Column(sa.Integer, primary_key=True)
    kind = enum_column(ImportKind, default=ImportKind.readings)
    #: "upload" (back office), "cli" or "manual".
    source = sa.Column(sa.String(16), nullable=False, default="upload")
    filename = sa.Column(sa.String(255), nullable=False, default="")
    status = enum_column(ImportStatus, default=ImportStatus.pending, index=True)
    #: Estimated data rows of the file (for the progress bar); exact once finished.
    total_rows = sa.Column(sa.Integer, nullable=False, default=0)
    processed_rows = sa.Column(sa.Integer, nullable=False, default=0)
    inserted_count = sa.Column(sa.Integer, nullable=False, default=0)
    updated_count = sa.Column(sa.Integer, nullable=False, default=0)
    unchanged_count = sa.Column(sa.Integer, nullable=False, default=0)
    rejected_count = sa.Column(sa.Integer, nullable=False, default=0)
    flagged_count = sa.Column(sa.Integer, nullable=False, default=0)
    rollover_count = sa.Column(sa.Integer, nullable=False, default=0)
    #: Per-sheet counts of a master-data import: {sheet: {inserted, updated, ...}}.
    summary = sa.Column(sa.JSON)
    #: The header cells of the file as uploaded, per sheet: {sheet: [header, ...]}.
    headers = sa.Column(sa.JSON)
    #: Zones the uploader may import for (a Manager's zones); None means every zone.
    zone_ids = sa.Column(sa.JSON)
    #: Why the file could not be processed (unreadable file, unexpected error).
    message = sa.Column(sa.Text)
    #: The uploaded bytes until the job has read them (workers may run on other hosts).
    content = deferred(sa.Column(sa.LargeBinary))
    job_id = sa.Column(sa.String(64))
    user_id = sa.Column(sa.ForeignKey("ab_user.id"), index=True)
    username = sa.Column(sa.String(100))
    started_dt = sa.Column(UTCDateTime)
    finished_dt = sa.Column(UTCDateTime)

    user = relationship("User")
    errors = relationship(
        "ImportRowError", back_populates="batch", order_by="ImportRowError.line_no",
        lazy="dynamic", passive_deletes=True,
    )

    def __repr__(self):
        return f"#{self.id} {self.filename}"

    @property
    def accepted_count(self) -> int:
        """Rows that passed every check (stored, updated or already identical)."""
        return self.inserted_count + self.updated_count + self.unchanged_count

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportStatus.done, ImportStatus.failed)


class ImportRowError(Model):
    """A rejected row of an import: where it was, its cells as uploaded, and why."""

    __tablename__ = "import_row_errors"
    __table_args__ = (sa.Index("ix_import_row_errors_batch_line", "batch_id", "sheet", "line_no"),)

    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    batch_id = sa.Column(sa.ForeignKey("import_batches.id", ondelete="CASCADE"), nullable=False)
    #: The sheet (master data) or "readings".
    sheet = sa.Column(sa.String(32), nullable=False, default="readings")
    #: Line (CSV) or row (XLSX) number in the file, 1-based, header included.
    line_no = sa.Column(sa.Integer, nullable=False)
    cells = sa.Column(sa.JSON, nullable=False)
    reason = sa.Column(sa.String(500), nullable=False)

    batch = relationship("ImportBatch", back_populates="errors")


class MeterReading(Audited, MarketScoped, TimestampMixin, Model):
    """A meter's reading for one billing period; consumption is already multiplied."""

    __tablename__ = "meter_readings"
    __table_args__ = (
        sa.UniqueConstraint("meter_id", "period"),
        sa.Index("ix_meter_readings_market_period", "market_id", "period"),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    meter_id = sa.Column(sa.ForeignKey("meters.id", ondelete="CASCADE"), nullable=False)
    #: The meter's zone, copied for zone scoping.
    zone_id = sa.Column(sa.ForeignKey("zones.id"), nullable=False, index=True)
    #: First day of the billing month (Asia/Shanghai).
    period = sa.Column(sa.Date, nullable=False)
    #: The register value read off the meter (in the meter's unit, before the multiplier).
    reading = sa.Column(Quantity, nullable=False)
    #: The day the reading was taken (Asia/Shanghai), if known.
    read_date = sa.Column(sa.Date)
    reader = sa.Column(sa.String(50))
    note = sa.Column(sa.String(200))
    #: The reading it is measured from: the latest earlier period's reading, or the start reading.
    previous_reading = sa.Column(Quantity, nullable=False)
    #: (reading difference, across roll-over / replacement) x multiplier, in the meter's unit.
    consumption = sa.Column(Quantity, nullable=False)
    is_rollover = sa.Column(sa.Boolean, nullable=False, default=False)
    #: A meter replacement falls between the previous reading and this one.
    has_replacement = sa.Column(sa.Boolean, nullable=False, default=False)
    is_flagged = sa.Column(sa.Boolean, nullable=False, default=False)
    flag_reason = sa.Column(sa.String(200))
    #: Set by the billing run that billed this reading (no foreign key: billing owns bills).
    bill_id = sa.Column(sa.Integer, index=True)
    billed_dt = sa.Column(UTCDateTime)
    #: The import batch that last wrote this reading (None when typed in by hand).
    batch_id = sa.Column(sa.ForeignKey("import_batches.id", ondelete="SET NULL"), index=True)

    meter = relationship("Meter", lazy="joined")
    zone = relationship("Zone")

    def __repr__(self):
        return f"{self.meter_id}@{self.period:%Y-%m}: {self.reading}"

    @classmethod
    def zone_clause(cls, zone_ids):
        return cls.zone_id.in_(zone_ids)


__all__ = ["ImportBatch", "ImportKind", "ImportRowError", "ImportStatus", "MeterReading"]
