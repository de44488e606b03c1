"""Backup and restore of an appliance (docs/operations.md, "Backup and restore"), and the support bundle.

archive.py   the backup's format: a gzip'd tar with a manifest of hashes; reading it with limits (pure)
crypto.py    the optional passphrase: scrypt and AES-256-GCM around the whole archive (pure)
collect.py   a consistent copy of a running appliance's stores (SQLite's backup API), certificates, keys
restore.py   checking a backup before anything is written, restoring a fresh state directory,
             and the users and API keys of a running appliance
bundle.py    the support bundle: what support needs, with every secret redacted
"""
