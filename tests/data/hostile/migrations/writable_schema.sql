PRAGMA writable_schema = ON;
UPDATE sqlite_master SET sql = replace(sql, 'TEXT', 'BLOB') WHERE name = 'users';
PRAGMA writable_schema = OFF;
