//! The dispatcher against the real RabbitMQ and Postgres: every test has its own database and
//! its own exchange/queue prefix, so they run concurrently with each other and with the rest of
//! the suite.

mod end_to_end;
mod faults;
mod helpers;
mod retry;
mod topology;
