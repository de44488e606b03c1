"""A whole-file apply through the change front door reuses the services whose data did not change (model/reuse.py)."""

from __future__ import annotations

from pacslb.change.result import Outcome
from pacslb.change.service import Origin

from .test_changes import TEXT, rig  # noqa: F401 - the fixture of the change front door's tests, over fake engines

TWO = (
    TEXT
    + """  - name: dicom
    mode: layer7-tcp
    listen: [{address: 127.0.0.1, port: 11112}]
    real_servers:
      - {name: pacs1, address: 127.0.0.4, port: 104}
"""
)


async def test_a_whole_file_apply_keeps_the_objects_of_unchanged_services(rig) -> None:  # noqa: F811 - the fixture
    changes = rig[0]
    first = await changes.apply(text=TWO, origin=Origin("ann", "api"))
    assert first.outcome is Outcome.APPLIED, first.message
    web, dicom = changes.config.virtual_services
    second = await changes.apply(text=TWO.replace("port: 104", "port: 105"), origin=Origin("ann", "api"))
    assert second.outcome is Outcome.APPLIED, second.message
    web2, dicom2 = changes.config.virtual_services
    assert web2 is web  # validated once: the same object, which the render cache and the revision's JSON find at once
    assert dicom2 is not dicom and dicom2.real_servers[0].port == 105
    assert changes.store.current().config_data == changes.config.model_dump(mode="json")
    # the data sent as JSON (the API, `pacslb apply`) is reused alike
    data = changes.config.model_dump(mode="json")
    seen = []
    for port in (106, 107):
        data["virtual_services"][1]["real_servers"][0]["port"] = port
        answer = await changes.apply(data=data, origin=Origin("ann", "api"))
        assert answer.outcome is Outcome.APPLIED, answer.message
        seen.append(changes.config.virtual_services[0])
    assert seen[1] is seen[0]
    assert changes.config.virtual_services[1].real_servers[0].port == 107
