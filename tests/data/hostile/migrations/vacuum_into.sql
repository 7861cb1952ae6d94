CREATE TABLE notes (body TEXT);
VACUUM INTO 'copy.db';
