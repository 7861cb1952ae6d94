-- a new file in the working directory, and in the data directory
CREATE TABLE notes (body TEXT);
ATTACH DATABASE 'outside.db' AS x;
CREATE TABLE x.t (a);
