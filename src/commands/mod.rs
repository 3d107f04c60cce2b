//! The commands besides `serve`: `authd import`, `authd keys`, `authd healthcheck`. Each opens
//! what it needs itself (the database through `db::connect`), never the composition root.

pub mod healthcheck;
pub mod import;
pub mod keys;
