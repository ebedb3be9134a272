-- The webhook sender of every instance wakes when any instance commits events
-- (store::changes): a statement inserting into outbox_events notifies on the channel the
-- read caches listen on, with the payload 'outbox' (which leaves the caches valid).
CREATE FUNCTION tmai_pay_outbox_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tmai_pay_changes', 'outbox');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_written
    AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION tmai_pay_outbox_written();
