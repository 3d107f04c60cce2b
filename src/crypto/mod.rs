//! Cryptography: password hashing, opaque tokens, signing keys and access tokens.

pub mod hash_pool;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod token;
