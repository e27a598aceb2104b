"""Run in bench/.feast-venv (Feast's own environment): write a minimal Feast repository
to REPO with its Redis online store on PORT, apply it, and write the same users' session
features (those the session processor keeps in `user:{id}:features`) to the online store.

    bench/.feast-venv/bin/python bench/serving/feast_peer/prepare.py REPO PORT USERS
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.types import Float64, Int64
from feast.value_type import ValueType

FEATURE_STORE_YAML = """\
project: lakehouse_bench
registry: {repo}/registry.db
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:{port}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def session_features(users: int, seed: int = 6) -> pd.DataFrame:
    """Per user: events, last_seen (epoch ms), price_min/max, session_count."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    low = rng.uniform(1, 50, users).round(2)
    return pd.DataFrame(
        {
            "user_id": np.arange(1, users + 1, dtype=np.int64),
            "events": rng.integers(1, 200, users),
            "last_seen": np.int64(now.timestamp() * 1000) - rng.integers(0, 3_600_000, users),
            "price_min": low,
            "price_max": (low + rng.uniform(0, 200, users)).round(2),
            "session_count": rng.integers(1, 6, users),
            "event_timestamp": [now - timedelta(seconds=1)] * users,
        }
    )


def main(repo: Path, port: int, users: int) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(repo=repo, port=port))
    frame = session_features(users)
    frame.to_parquet(repo / "user_session.parquet")
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="user_session",
        entities=[user],
        ttl=timedelta(days=30),
        schema=[
            Field(name="events", dtype=Int64),
            Field(name="last_seen", dtype=Int64),
            Field(name="price_min", dtype=Float64),
            Field(name="price_max", dtype=Float64),
            Field(name="session_count", dtype=Int64),
        ],
        online=True,
        source=FileSource(
            path=str(repo / "user_session.parquet"), timestamp_field="event_timestamp"
        ),
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, view])
    store.write_to_online_store("user_session", frame)
    check = store.get_online_features(
        features=[f"user_session:{f.name}" for f in view.features], entity_rows=[{"user_id": 1}]
    ).to_dict()
    assert check["events"][0] == int(frame["events"][0]), check
    print(f"feast repo {repo}: {users} users written to redis :{port}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), int(sys.argv[2]), int(sys.argv[3]))
