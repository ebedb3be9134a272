-- Nothing on SQLite: one process writes the file, and it wakes its own webhook sender
-- after each commit (store::changes). The PostgreSQL migration of the same number adds the
-- NOTIFY other instances' senders wake on.
SELECT 1;
