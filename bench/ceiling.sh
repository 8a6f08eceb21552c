#!/usr/bin/env bash
# Measures the PostgreSQL ceiling for kefu's registration transaction with pgbench:
#   bench/ceiling.sh [clients] [seconds]
# It creates the database kefu_ceiling on 127.0.0.1:5432 (user postgres), runs bench/ceiling.sql
# with the given number of clients, and prints pgbench's report.
set -euo pipefail
clients=${1:-64}
seconds=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS kefu_ceiling' -c 'CREATE DATABASE kefu_ceiling'
psql -h 127.0.0.1 -U postgres -d kefu_ceiling -q <<'SQL'
CREATE TABLE ceiling_complaints (seq bigserial PRIMARY KEY, case_number varchar(32) NOT NULL UNIQUE,
  request_id varchar(128) UNIQUE, category varchar(64) NOT NULL, waybill_number varchar(64) NOT NULL,
  channel varchar(16) NOT NULL, description text NOT NULL, customer_request text NOT NULL,
  contact_name varchar(128) NOT NULL, contact_phone varchar(64) NOT NULL, branch varchar(64) NOT NULL,
  owner varchar(32) NOT NULL, responsible_unit varchar(64) NOT NULL, owner_reference varchar(128),
  state varchar(16) NOT NULL, create_time timestamptz NOT NULL, deadline timestamptz NOT NULL,
  accept_time timestamptz, received_by varchar(128) NOT NULL, received_by_department varchar(128) NOT NULL);
CREATE INDEX ON ceiling_complaints (waybill_number);
CREATE INDEX ON ceiling_complaints (branch);
CREATE INDEX ON ceiling_complaints (category);
CREATE TABLE ceiling_outbox (seq bigserial PRIMARY KEY, event_id varchar(64) NOT NULL UNIQUE,
  destination varchar(32) NOT NULL, payload bytea NOT NULL, attempts int NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL, lease_until timestamptz, last_error text, create_time timestamptz NOT NULL);
CREATE INDEX ON ceiling_outbox (next_attempt_at);
SQL
pgbench -h 127.0.0.1 -U postgres -n -c "$clients" -j 2 -T "$seconds" -f "$here/ceiling.sql" kefu_ceiling
psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE kefu_ceiling'
