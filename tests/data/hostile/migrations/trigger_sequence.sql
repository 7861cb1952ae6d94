CREATE TABLE counters (id INTEGER PRIMARY KEY AUTOINCREMENT, n);
-- every later insert would rewrite SQLite's own bookkeeping
CREATE TRIGGER reset_ids AFTER INSERT ON counters BEGIN
  DELETE FROM sqlite_sequence;
END;
