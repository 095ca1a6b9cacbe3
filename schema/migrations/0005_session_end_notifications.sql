-- Each process caches what access tokens resolve to (service::auth::cache). When a session ends,
-- in whichever process, every process must drop that user's entries: the trigger announces it,
-- so no code path that ends a session can forget to.
CREATE FUNCTION notify_session_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('corbi_access', 'user:' || NEW.user_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_ended
    AFTER UPDATE OF ended_at ON sessions
    FOR EACH ROW
    WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION notify_session_ended();
