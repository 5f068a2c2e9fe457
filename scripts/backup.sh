#!/usr/bin/env bash
# A whole-database backup of an aiaudit PostgreSQL store, checked before it is kept.
#
# Usage: scripts/backup.sh OUT_FILE [CONNINFO]
#   OUT_FILE  the dump to write (custom format: restore with pg_restore)
#   CONNINFO  a libpq connection string or URI; without it libpq's PGHOST,
#             PGPORT, PGUSER, PGDATABASE and PGPASSFILE say where (keeps the
#             password out of the process list)
#
# Why these flags: one consistent snapshot of every table (pg_dump's own
# transaction) is what `aiaudit verify` needs: entries, events, content, data
# keys, nodes, checkpoints and cursors of one instant. --format=custom keeps
# the grants and owners (the roles' separation) and restores in parallel. The
# dump is written under a temporary name and renamed only once pg_restore can
# read its table of contents and it holds the log's tables, so a failed or
# cut dump never sits under the final name. The roles themselves are the
# cluster's: back them up with `pg_dumpall --roles-only --no-role-passwords`.
# The dump holds wrapped data keys and sealed content: store it as you store
# the database (see README, "Backup and restore").
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 OUT_FILE [CONNINFO]" >&2; exit 2; }
out=$1
partial="$out.partial.$$"
trap 'rm -f "$partial"' EXIT

pg_dump --format=custom --no-password --file="$partial" ${2:+"--dbname=$2"}

toc=$(pg_restore --list "$partial")
for table in logs log_entries events event_content content_keys consumer_cursors \
    integrity_nodes integrity_checkpoints; do
    # events and event_content are partitioned: their data is in partitions, DEFAULT among them
    grep -Eq "TABLE DATA [^ ]+ $table(_default)? " <<<"$toc" || {
        echo "$0: the dump holds no data of table $table: not an aiaudit store?" >&2
        exit 1
    }
done
sync "$partial"
mv "$partial" "$out"
trap - EXIT
echo "$out: $(stat -c %s "$out") bytes, $(grep -c 'TABLE DATA' <<<"$toc") tables' data" >&2
