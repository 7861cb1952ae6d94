CREATE TABLE notes (body TEXT);
UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2;
