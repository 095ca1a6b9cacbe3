-- Failed sign-ins, for throttling password guessing (service::auth::throttle): after too many
-- failures for one account or from one address within a window, sign-in answers 429 until the
-- oldest of them leaves the window.
--
-- Like credentials and sessions this is the command side's own working state, not history: rows
-- older than the window mean nothing and are deleted as new failures arrive, and a successful
-- sign-in deletes its account's rows.
--
-- Unknown emails are recorded too (so a 429 does not tell which emails have accounts), which is
-- why the account is stored as the SHA-256 hex of the normalised email, never the email itself:
-- the table would otherwise collect every address anybody typed.

CREATE TABLE sign_in_failures (
    account_key text        NOT NULL,
    -- The client address as the service saw it; unknown for some transports.
    ip          text,
    failed_at   timestamptz NOT NULL DEFAULT now()
);

-- The throttle asks for the n-th most recent failure of an account and of an address within the
-- window; newest first, each is a short index range scan.
CREATE INDEX sign_in_failures_by_account ON sign_in_failures (account_key, failed_at DESC);
CREATE INDEX sign_in_failures_by_ip ON sign_in_failures (ip, failed_at DESC) WHERE ip IS NOT NULL;
