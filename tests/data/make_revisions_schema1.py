"""How revisions-schema1.sqlite was made: run with pacslb before revision deltas (commit 066d57f, schema 1),

    PYTHONPATH=<that checkout>/src python tests/data/make_revisions_schema1.py tests/data/revisions-schema1.sqlite

three revisions (applied whole, applied drain, failed weight) of a two-service configuration with
settings.revisions.keep: 12. tests/unit/store/test_revision_delta.py opens a copy with today's code.
"""

import sqlite3
import sys
from pathlib import Path

from pacslb.change.service import with_real_servers
from pacslb.model import load_text
from pacslb.model.config import RealServerState
from pacslb.store import RevisionStore

TEXT = """version: 1
settings: {revisions: {keep: 12}}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    real_servers:
      - {name: rs1, address: 127.0.0.2, port: 80}
      - {name: rs2, address: 127.0.0.3, port: 80}
  - name: dicom
    mode: layer7-tcp
    listen: [{address: 127.0.0.1, port: 11112}]
    real_servers:
      - {name: pacs1, address: 127.0.0.4, port: 104}
"""


def main(out: Path) -> None:
    store = RevisionStore(out)
    config = load_text(TEXT).config
    rev = store.add(config.model_dump_json(), TEXT, author="setup", message="first", kind="file", parent=None)
    store.mark_applied(rev.id)
    drained = with_real_servers(config, {("web", "rs1"): {"state": RealServerState.DRAIN}})
    rev2 = store.add(drained.model_dump_json(), "", author="op", message="drain web/rs1", kind="server", parent=rev.id)
    store.mark_applied(rev2.id)
    failed = with_real_servers(drained, {("web", "rs2"): {"weight": 7}})
    rev3 = store.add(failed.model_dump_json(), "", author="op", message="weight 7", kind="server", parent=rev2.id)
    store.mark_failed(rev3.id, "refused")
    db = sqlite3.connect(out)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file, no write-ahead log beside it
    db.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
