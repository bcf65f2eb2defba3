"""A box tells the town console where it is and which time zone its village keeps.

The retained `online` status carries `site_name`, `timezone`, `location` and each camera's
location from the box config; the console places the box on its map and shows the village's
times in its zone from that alone (docs/console.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.app.config import parse_config
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.config import ConfigError
from edge_agent.delivery.service import Delivery
from tests.broker import Mosquitto, Subscriber, mosquitto  # noqa: F401

CONFIG = """
version: 1
site: {{id: laohu, name: "涝湖村", timezone: Asia/Shanghai, location: {{lat: 34.25, lon: 108.94}}}}
device: {{id: edge-01}}
mqtt: {{url: "mqtt://127.0.0.1:{port}"}}
outbox: {{path: "{outbox}"}}
cameras:
  - id: bridge-east
    url: rtsp://127.0.0.1:8554/bridge
    location: {{lat: 34.2512, lon: 108.9431}}
  - id: lane
    url: rtsp://127.0.0.1:8554/lane
"""


def test_the_online_status_announces_zone_and_locations(mosquitto: Mosquitto, tmp_path: Path) -> None:  # noqa: F811
    cfg = parse_config(CONFIG.format(port=mosquitto.port, outbox=tmp_path / "outbox.sqlite3"))
    topics = Topics("eagleeye", "laohu", "edge-01")
    delivery = Delivery(cfg, topics)
    delivery.start()
    try:
        with Subscriber(mosquitto.port, [topics.status]) as sub:
            msgs = sub.wait_for(lambda m: any(x.json().get("state") == "online" for x in m), 10)
    finally:
        delivery.close()
    online = next(m.json() for m in msgs if m.json()["state"] == "online")
    assert validate("status", online) == []
    assert online["site_name"] == "涝湖村"
    assert online["timezone"] == "Asia/Shanghai"
    assert online["location"] == {"lat": 34.25, "lon": 108.94}
    assert online["cameras"] == [
        {"id": "bridge-east", "location": {"lat": 34.2512, "lon": 108.9431}},
        {"id": "lane"},
    ]


@pytest.mark.parametrize(
    ("location", "path"),
    [("{lat: 91, lon: 0}", "site.location.lat"), ("{lat: 30, lon: 200}", "site.location.lon"),
     ("{lat: 30}", "site.location.lon"), ("[30, 120]", "site.location")],
)  # fmt: skip
def test_a_bad_location_names_its_path(location: str, path: str) -> None:
    text = CONFIG.format(port=1883, outbox="/tmp/o.sqlite3").replace(
        "location: {lat: 34.25, lon: 108.94}", f"location: {location}"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert any(p.path == path for p in err.value.problems), [str(p) for p in err.value.problems]
