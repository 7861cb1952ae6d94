ALTER TABLE filters RENAME TO saved_filters;
