BEGIN TRANSACTION;
CREATE TABLE host_results (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            host TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            txid TEXT,
            started REAL,
            ended REAL,
            elapsed REAL,
            data TEXT, batch INTEGER, from_run INTEGER, phases TEXT, diff TEXT,
            PRIMARY KEY (run_id, host)
        );
INSERT INTO "host_results" VALUES(1,'hv1','confirmed','confirmed 20231114T221320-aa','20231114T221320-aa',1700000001.0,1700000031.5,30.5,'{"txid": "20231114T221320-aa"}',0,NULL,'{"prepare": 2.0, "total": 30.5, "window": 20.0}',NULL);
INSERT INTO "host_results" VALUES(1,'hv2','started','','20231114T221352-bb',1700000032.0,NULL,NULL,'{}',1,NULL,NULL,NULL);
CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            command TEXT NOT NULL,
            task_path TEXT,
            task_sha256 TEXT,
            selection TEXT,
            hosts TEXT NOT NULL,
            options TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            exit_code INTEGER,
            state TEXT NOT NULL,
            controller TEXT NOT NULL
        , resumed_from INTEGER);
INSERT INTO "runs" VALUES(1,'apply','/srv/task.yaml','abababababababababababababababababababababababababababababababab','hv*','["hv1", "hv2", "hv3"]','{"batch_size": 1, "batch_size_hosts": 1, "forks": 10, "origin": "cli"}',1700000000.25,1700000040.0,130,'interrupted','{"host": "ctl", "pid": 4242, "start": "99", "version": "0.1"}',NULL);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO "schema_version" VALUES(2);
CREATE INDEX runs_started ON runs (started);
CREATE INDEX host_results_host ON host_results (host, run_id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('runs',1);
COMMIT;
