//! The password settings: how new hashes are made and what new passwords must look like.

use crate::crypto::hash_bounds::CostBounds;
use crate::crypto::password::{HashAlgorithm, HashParams};
use clap::Args;
use clap::builder::TypedValueParser;
use std::num::NonZeroUsize;

/// What new hashes cost, and so (with the fixed ceilings of `crypto::hash_bounds`) the most a
/// stored hash may cost to check: `serve` and `import` both read it.
#[derive(Debug, Clone, Args)]
pub struct HashCostSettings {
    /// argon2id memory cost in KiB.
    #[arg(long, env = "AUTHD_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "AUTHD_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "AUTHD_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// bcrypt cost, when bcrypt is chosen.
    #[arg(long, env = "AUTHD_BCRYPT_COST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,
}

impl HashCostSettings {
    /// The most a stored hash may cost to check, with this cost configured.
    pub fn bounds(&self) -> CostBounds {
        // The algorithm of new hashes and the thread count do not move the bounds.
        CostBounds::new(&self.hash_params(HashAlgorithm::Argon2id, 1))
    }

    fn hash_params(&self, algorithm: HashAlgorithm, max_concurrent: usize) -> HashParams {
        HashParams {
            algorithm,
            argon2_memory_kib: self.argon2_memory_kib,
            argon2_iterations: self.argon2_iterations,
            argon2_parallelism: self.argon2_parallelism,
            bcrypt_cost: self.bcrypt_cost,
            max_concurrent,
        }
    }
}

/// How passwords are hashed and what they must look like.
#[derive(Debug, Clone, Args)]
pub struct PasswordSettings {
    /// Algorithm for new hashes; hashes of the other kind still verify and are upgraded at login.
    #[arg(
        long = "password-hash",
        env = "AUTHD_PASSWORD_HASH",
        default_value = "argon2id",
        value_parser = clap::builder::PossibleValuesParser::new(HashAlgorithm::NAMES)
            .map(|name| HashAlgorithm::from_name(&name).unwrap_or(HashAlgorithm::Argon2id))
    )]
    pub algorithm: HashAlgorithm,
    /// What new hashes cost.
    #[command(flatten)]
    pub cost: HashCostSettings,
    /// Hashes running at once; more callers wait [default: number of CPUs].
    #[arg(long, env = "AUTHD_MAX_CONCURRENT_HASHES")]
    pub max_concurrent_hashes: Option<NonZeroUsize>,
    /// Minimum length of new passwords in characters, counted after Unicode NFKC normalization
    /// (the maximum is 128). 15 follows NIST SP 800-63B rev 4 for a password that is the only
    /// factor; 8 is the lowest it goes. Login accepts existing passwords of 8 and more.
    #[arg(long = "password-min-length", env = "AUTHD_PASSWORD_MIN_LENGTH", default_value_t = 15, value_parser = clap::value_parser!(u16).range(8..=128))]
    pub min_length: u16,
    /// The name users know this service by: refused as a password, like "authd" (NIST's
    /// context-specific words).
    #[arg(long, env = "AUTHD_SERVICE_NAME", default_value = "authd")]
    pub service_name: String,
}

impl PasswordSettings {
    pub fn max_concurrent_hashes(&self) -> usize {
        self.max_concurrent_hashes
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    /// The hasher's cost, from these settings.
    pub fn hash_params(&self) -> HashParams {
        self.cost
            .hash_params(self.algorithm, self.max_concurrent_hashes())
    }
}
