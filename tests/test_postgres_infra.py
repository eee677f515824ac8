"""The PostgreSQL test infrastructure itself: scripts/postgres.sh, tests/pg.py, fixtures."""

from __future__ import annotations

import psycopg

from pg import drop_database, fresh_database

USER_TABLES = """
    SELECT count(*) FROM information_schema.tables
    WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
"""


def test_server_answers_and_is_at_least_15(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT version()").fetchone()
        assert row is not None and row[0].startswith("PostgreSQL ")
        num = conn.execute("SHOW server_version_num").fetchone()
        assert num is not None and int(num[0]) >= 150000, num
        assert conn.info.server_version >= 150000


def test_pg_database_is_empty_and_isolated(postgres_url: str, pg_database: str) -> None:
    other = fresh_database(postgres_url)
    try:
        with psycopg.connect(pg_database) as a, psycopg.connect(other) as b:
            assert a.execute("SELECT current_database()").fetchone() != (
                b.execute("SELECT current_database()").fetchone()
            )
            assert a.execute(USER_TABLES).fetchone() == (0,)
            assert b.execute(USER_TABLES).fetchone() == (0,)

            a.execute("CREATE TABLE only_in_a (id int PRIMARY KEY)")
            a.execute("INSERT INTO only_in_a VALUES (1)")
            a.commit()

            assert a.execute("SELECT id FROM only_in_a").fetchall() == [(1,)]
            assert b.execute("SELECT to_regclass('only_in_a')").fetchone() == (None,)
            assert b.execute(USER_TABLES).fetchone() == (0,)
    finally:
        drop_database(other)
    with psycopg.connect(postgres_url) as conn:
        gone = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s",
            (psycopg.conninfo.conninfo_to_dict(other)["dbname"],),
        ).fetchone()
    assert gone == (0,)


def test_server_listens_on_loopback_only(postgres_url: str) -> None:
    # Holds for the server scripts/postgres.sh runs (the one `make test` uses).
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
