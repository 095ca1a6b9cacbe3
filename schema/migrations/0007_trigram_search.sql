-- Trigram indexes make "contains" and prefix searches over names and identifiers fast (the
-- contacts read model builds them). pg_trgm is a trusted extension: the database owner may
-- create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
