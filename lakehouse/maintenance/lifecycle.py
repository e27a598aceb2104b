"""S3 lifecycle tiering of the tables' data files, built from the catalog.

Each table gets at most two rules, both filtered on the prefix of its data files
(`<table>/<first partition column>=`, or `<table>/part-` when unpartitioned), a string
that `<table>/_delta_log/` can never match: the log stays in Standard, where every read
and commit needs it at once.

- `live`: the table's tiers (`TableSpec.tiers`) and an expiry `lifecycle_expiry_margin_days`
  after its retention. Live files go no colder than Glacier Instant Retrieval, because
  the current snapshot reads them with a plain GET; a tier into a class that needs a
  restore is refused, and a tier is left out when the file would be deleted before S3's
  minimum storage duration of that class has passed (it would only cost more).
- `removed`: files carrying the tag `lakehouse:state=removed` expire after a day.
  `tag_removed_files` tags exactly the files delta-rs's VACUUM would delete now (removed
  from the snapshot longer ago than the vacuum retention), so the time-travel window is
  untouched; S3 counts a rule's days from an object's creation, not from its tagging,
  which is why the tag is set only once that window has passed.

S3 ages objects by their creation time, which for a date-partitioned table is the day
after its partition date (landing, then the nightly compaction); docs/storage-tiering.md
explains the interplay with Delta's immutable files and what a query over archived days
costs. The rules are applied by `apply_lifecycle`, idempotently, keeping every rule in
the bucket that is not ours.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from lakehouse.catalog import CATALOG, Catalog, TableSpec, TierRule, table_uri
from lakehouse.delta import open_table
from lakehouse.settings import Settings
from lakehouse.storage import s3_client, split_s3_uri

RULE_ID_PREFIX = "lakehouse:"
"""Every rule this module writes has an ID `lakehouse:<table URI>:<kind>`; others are kept."""
REMOVED_TAG = {"Key": "lakehouse:state", "Value": "removed"}
"""The tag of a data file no version inside the time-travel window references."""
REMOVED_EXPIRY_DAYS = 1
"""S3's earliest expiry: a tagged file is already past the vacuum retention."""
_TAG_THREADS = 16


@dataclass(frozen=True)
class LifecycleResult:
    """What `apply_lifecycle` found and did; rule lists hold rule IDs.

    `written` is False when nothing differed (or on a dry run, or for a local lake);
    `note` says why when nothing could be done at all.
    """

    bucket: str | None
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    foreign: int = 0
    written: bool = False
    dry_run: bool = False
    note: str = ""


def data_prefix(spec: TableSpec, settings: Settings) -> str:
    """The S3 key prefix of a table's data files, which no `_delta_log/` key starts with.

    delta-rs writes a partitioned table's files under `<col>=<value>/` and an
    unpartitioned table's as `part-<n>-<uuid>...parquet` beside `_delta_log/`.
    """
    _, key = split_s3_uri(table_uri(spec, settings))
    first = f"{spec.partition_by[0]}=" if spec.partition_by else "part-"
    return f"{key}/{first}"


def expiry_days(spec: TableSpec, settings: Settings) -> int | None:
    """Days after creation S3 deletes a live file: the retention plus a margin, so the
    retention step has removed the partition from the Delta log first (None: kept)."""
    if spec.retention_days is None:
        return None
    return spec.retention_days + settings.lifecycle_expiry_margin_days


def live_tiers(spec: TableSpec, settings: Settings) -> tuple[TierRule, ...]:
    """The table's tiers as S3 will apply them to the files its snapshot reads.

    Refuses a class that cannot be read without a restore (Glacier Flexible Retrieval,
    Deep Archive): a query would fail on the first such file. Leaves out a tier whose
    class the file would leave (by expiry) before that class's minimum storage duration,
    which S3 bills anyway.
    """
    for tier in spec.tiers:
        if not tier.storage_class.directly_readable:
            raise ValueError(
                f"{spec.key}: {tier.storage_class} objects cannot be read without a restore, "
                "and the table's current snapshot reads every data file; live files go no "
                "colder than GLACIER_IR"
            )
    expiry = expiry_days(spec, settings)
    return tuple(
        tier
        for tier in spec.tiers
        if expiry is None or expiry - tier.after_days >= tier.storage_class.min_storage_days
    )


def table_rules(spec: TableSpec, settings: Settings) -> list[dict[str, Any]]:
    """The lifecycle rules of one table on an S3 lake, in boto3's shape."""
    prefix = data_prefix(spec, settings)
    rule_id = f"{RULE_ID_PREFIX}{table_uri(spec, settings)}"
    live: dict[str, Any] = {"ID": f"{rule_id}:live", "Status": "Enabled",
                            "Filter": {"Prefix": prefix}}
    tiers = live_tiers(spec, settings)
    if tiers:
        live["Transitions"] = [
            {"Days": tier.after_days, "StorageClass": tier.storage_class.value} for tier in tiers
        ]
    expiry = expiry_days(spec, settings)
    if expiry is not None:
        live["Expiration"] = {"Days": expiry}
    removed = {
        "ID": f"{rule_id}:removed",
        "Status": "Enabled",
        "Filter": {"And": {"Prefix": prefix, "Tags": [REMOVED_TAG]}},
        "Expiration": {"Days": REMOVED_EXPIRY_DAYS},
    }
    has_action = "Transitions" in live or "Expiration" in live
    return [live, removed] if has_action else [removed]


def lifecycle_rules(settings: Settings, catalog: Catalog = CATALOG) -> list[dict[str, Any]]:
    """Every catalogued table's rules, in catalog order."""
    return [rule for spec in catalog.tables.values() for rule in table_rules(spec, settings)]


def apply_lifecycle(
    settings: Settings, *, dry_run: bool = False, catalog: Catalog = CATALOG
) -> LifecycleResult:
    """Make the bucket's lifecycle rules for the lake's tables what the catalog says.

    Idempotent: when every rule of ours is already there as built, nothing is written.
    Rules that are not ours (another ID, or ours for another lake root in the bucket)
    are put back unchanged; ours for tables no longer catalogued are removed. S3 has no
    conditional write for lifecycle configurations, so run this from one place (the
    weekly maintenance), not concurrently with other writers of the bucket's rules.
    """
    if not settings.lake_is_s3:
        return LifecycleResult(
            bucket=None,
            dry_run=dry_run,
            note=f"lifecycle rules apply only to a lake on S3; {settings.lake_root} is a "
            "local folder: nothing done",
        )
    bucket, _ = split_s3_uri(settings.lake_root)
    client = s3_client(settings)
    wanted = {rule["ID"]: rule for rule in lifecycle_rules(settings, catalog)}
    current = _bucket_rules(client, bucket)
    ours = {rule["ID"]: rule for rule in current if _is_ours(rule, settings)}
    foreign = [rule for rule in current if rule.get("ID") not in ours]
    common = wanted.keys() & ours.keys()
    changed = sorted(key for key in common if _canonical(wanted[key]) != _canonical(ours[key]))
    result = LifecycleResult(
        bucket=bucket,
        added=tuple(sorted(wanted.keys() - ours.keys())),
        changed=tuple(changed),
        unchanged=tuple(sorted(common - set(changed))),
        removed=tuple(sorted(ours.keys() - wanted.keys())),
        foreign=len(foreign),
        dry_run=dry_run,
    )
    if dry_run or not (result.added or result.changed or result.removed):
        return result
    rules = foreign + list(wanted.values())
    if rules:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": rules}
        )
    else:
        client.delete_bucket_lifecycle(Bucket=bucket)
    return replace(result, written=True)


def tag_removed_files(
    spec: TableSpec,
    settings: Settings,
    *,
    retention_hours: int | None = None,
    enforce_retention_duration: bool = True,
) -> int:
    """Tag the data files VACUUM would delete now with `lakehouse:state=removed`, so the
    table's `removed` rule expires them; return how many were newly tagged.

    The files are delta-rs's own VACUUM dry run (the same arguments: by default the
    table's `delta.deletedFileRetentionDuration`, a week): removed from the snapshot
    longer ago than the retention, so no version inside the time-travel window reads
    them. Only keys under the table's data prefix are tagged, never `_delta_log/`. The
    maintenance role then needs no permission to delete data: S3 does it. Nothing is
    tagged on a local lake or for a table not created yet (0).
    """
    if not settings.lake_is_s3:
        return 0
    table = open_table(spec, settings)
    if table is None:
        return 0
    paths = table.vacuum(
        retention_hours=retention_hours,
        dry_run=True,
        enforce_retention_duration=enforce_retention_duration,
    )
    bucket, table_key = split_s3_uri(table_uri(spec, settings))
    prefix = data_prefix(spec, settings)
    keys = [key for key in (f"{table_key}/{path}" for path in paths) if key.startswith(prefix)]
    client = s3_client(settings)
    with ThreadPoolExecutor(max_workers=_TAG_THREADS) as pool:
        return sum(pool.map(lambda key: _tag(client, bucket, key), keys))


def _tag(client: BaseClient, bucket: str, key: str) -> bool:
    """Add the removed tag to one object, keeping its other tags; False if it already
    had it or is gone."""
    try:
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchKey":
            return False
        raise
    if REMOVED_TAG in tags:
        return False
    client.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [*tags, REMOVED_TAG]})
    return True


def _bucket_rules(client: BaseClient, bucket: str) -> list[dict[str, Any]]:
    try:
        return client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
            return []
        raise


def _is_ours(rule: dict[str, Any], settings: Settings) -> bool:
    """A rule this lake wrote: our ID prefix and a table under this lake root."""
    return str(rule.get("ID", "")).startswith(f"{RULE_ID_PREFIX}{settings.lake_root}/")


def _canonical(rule: dict[str, Any]) -> dict[str, Any]:
    """The parts of a rule we set, transitions in order, for comparing with S3's copy."""
    kept = {key: rule[key] for key in ("ID", "Status", "Filter", "Expiration") if key in rule}
    transitions = rule.get("Transitions", ())
    kept["Transitions"] = sorted((int(t["Days"]), str(t["StorageClass"])) for t in transitions)
    return kept
