//! Several `mtls-ca` replicas on one PostgreSQL database (`--store postgres://...`), each a
//! real process with its own copy of the same data directory (root.crt, root.key), on a
//! throwaway cluster (`testkit::postgres`): what one replica records, every other one sees;
//! losing a replica or the database primary loses nothing a client was given.

mod db_failover;
mod db_tls;
mod failover_client;
mod federation;
mod kill_burst;
mod ocsp_responder;
mod root_rotation;
mod root_rotation_two_tier;
mod shared_state;
mod sign_retry;
mod startup;
mod store_copy;
