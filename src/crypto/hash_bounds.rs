//! The most a stored password hash may cost to check, in one place: `authd import` skips a row
//! whose hash is over it, and a login against such a hash is refused like a wrong password after
//! checking the dummy hash instead, so nobody can make one login cost hours (bcrypt cost 31) or
//! gigabytes (argon2 m=4 GiB).
//!
//! The ceilings cover what real apps write (bcrypt 10 to 12 in Node, Rails, Laravel; argon2id
//! 19 to 64 MiB with t up to 4 in OWASP's list, Node's `argon2`, PHP and argon2-cffi; Django's
//! 100 MiB, t=2, p=8), with room for one doubling, and never go below the configured cost.

use super::password::HashParams;
use argon2::Params;
use argon2::password_hash::PasswordHash;

/// The highest bcrypt cost a stored hash may have (unless the configured one is higher): about
/// 0.6 s per check, one doubling over the 12 that the costliest common defaults use.
pub const BCRYPT_MAX_COST: u32 = 13;

/// The most argon2 memory (KiB) a stored hash may ask for (unless the configured cost asks for
/// more): 256 MiB.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;

/// The most argon2 work, memory × iterations in KiB (unless the configured cost is more): one pass
/// over 256 MiB, or 64 MiB four times. argon2 runs its lanes one after the other here, so this,
/// not the lanes, is what a check's time goes by.
pub const ARGON2_MAX_WORK_KIB: u64 = 256 * 1024;

/// The most argon2 lanes (p) a stored hash may have (unless the configured cost has more).
pub const ARGON2_MAX_LANES: u32 = 16;

/// The ceilings for one configured cost: each the larger of the fixed one and the configured one,
/// so a hash authd made itself is never over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostBounds {
    bcrypt_cost: u32,
    argon2_memory_kib: u32,
    argon2_work_kib: u64,
    argon2_lanes: u32,
}

/// Why a stored hash costs too much to check. Names costs only, never the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverCost {
    #[error("bcrypt cost {cost} is over the {max} allowed")]
    BcryptCost { cost: u32, max: u32 },
    #[error("argon2 memory of {kib} KiB is over the {max} KiB allowed")]
    Argon2Memory { kib: u32, max: u32 },
    #[error("argon2 memory × iterations of {work} KiB is over the {max} KiB allowed")]
    Argon2Work { work: u64, max: u64 },
    #[error("argon2 parallelism {lanes} is over the {max} allowed")]
    Argon2Lanes { lanes: u32, max: u32 },
}

impl CostBounds {
    /// The bounds for hashers configured with `configured`.
    pub fn new(configured: &HashParams) -> Self {
        Self {
            bcrypt_cost: BCRYPT_MAX_COST.max(configured.bcrypt_cost),
            argon2_memory_kib: ARGON2_MAX_MEMORY_KIB.max(configured.argon2_memory_kib),
            argon2_work_kib: ARGON2_MAX_WORK_KIB.max(
                u64::from(configured.argon2_memory_kib) * u64::from(configured.argon2_iterations),
            ),
            argon2_lanes: ARGON2_MAX_LANES.max(configured.argon2_parallelism),
        }
    }

    /// The most argon2 memory a check may use, in KiB (1 KiB blocks).
    pub fn argon2_memory_kib(&self) -> u32 {
        self.argon2_memory_kib
    }

    /// Whether checking `stored` stays within the bounds. A hash whose cost cannot be read is not
    /// this check's to refuse: it costs nothing (argon2 computes nothing for it, bcrypt refuses
    /// to read it) and the import's format check skips it.
    pub fn check(&self, stored: &str) -> Result<(), OverCost> {
        if let Some(cost) = bcrypt_cost(stored) {
            return if cost > self.bcrypt_cost {
                Err(OverCost::BcryptCost {
                    cost,
                    max: self.bcrypt_cost,
                })
            } else {
                Ok(())
            };
        }
        let Some(params) = argon2_params(stored) else {
            return Ok(());
        };
        let (kib, lanes) = (params.m_cost(), params.p_cost());
        let work = u64::from(kib) * u64::from(params.t_cost());
        if kib > self.argon2_memory_kib {
            Err(OverCost::Argon2Memory {
                kib,
                max: self.argon2_memory_kib,
            })
        } else if work > self.argon2_work_kib {
            Err(OverCost::Argon2Work {
                work,
                max: self.argon2_work_kib,
            })
        } else if lanes > self.argon2_lanes {
            Err(OverCost::Argon2Lanes {
                lanes,
                max: self.argon2_lanes,
            })
        } else {
            Ok(())
        }
    }
}

/// Whether `stored` is a bcrypt hash (any of its version prefixes).
pub(super) fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// The cost of a `$2b$10$…` hash.
pub(super) fn bcrypt_cost(stored: &str) -> Option<u32> {
    if !is_bcrypt(stored) || stored.as_bytes().get(6) != Some(&b'$') {
        return None;
    }
    let digits = stored.get(4..6)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The cost of an argon2 (any variant) PHC string, as argon2 would compute it.
fn argon2_params(stored: &str) -> Option<Params> {
    let parsed = PasswordHash::new(stored).ok()?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return None;
    }
    Params::try_from(&parsed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::password::HashAlgorithm;

    const SALT_AND_HASH: &str =
        "c2l4dGVlbiBieXRlIHNhbA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn configured() -> HashParams {
        HashParams {
            algorithm: HashAlgorithm::Argon2id,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            bcrypt_cost: 10,
            max_concurrent: 1,
        }
    }

    fn bcrypt_of_cost(cost: u32) -> String {
        format!("$2b${cost:02}$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy")
    }

    fn argon2(variant: &str, params: &str) -> String {
        format!("${variant}$v=19${params}${SALT_AND_HASH}")
    }

    #[test]
    fn bcrypt_costs_up_to_the_ceiling_pass_and_higher_ones_do_not() {
        let bounds = CostBounds::new(&configured());
        for cost in 4..=31 {
            for prefix in ["$2a$", "$2b$", "$2x$", "$2y$"] {
                let stored = format!("{prefix}{}", &bcrypt_of_cost(cost)[4..]);
                let checked = bounds.check(&stored);
                if cost <= BCRYPT_MAX_COST {
                    assert_eq!(checked, Ok(()), "{stored}");
                } else {
                    assert_eq!(
                        checked,
                        Err(OverCost::BcryptCost {
                            cost,
                            max: BCRYPT_MAX_COST
                        }),
                        "{stored}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_higher_configured_cost_raises_the_ceiling() {
        let mut costly = configured();
        costly.bcrypt_cost = 15;
        costly.argon2_memory_kib = 512 * 1024;
        costly.argon2_iterations = 3;
        costly.argon2_parallelism = 32;
        let bounds = CostBounds::new(&costly);
        assert_eq!(bounds.check(&bcrypt_of_cost(15)), Ok(()));
        assert!(bounds.check(&bcrypt_of_cost(16)).is_err());
        assert_eq!(bounds.argon2_memory_kib(), 512 * 1024);
        // What authd itself would write is within its own bounds.
        assert_eq!(
            bounds.check(&argon2("argon2id", "m=524288,t=3,p=32")),
            Ok(())
        );
        assert!(
            bounds
                .check(&argon2("argon2id", "m=524288,t=4,p=1"))
                .is_err()
        );
    }

    #[test]
    fn argon2_memory_work_and_lanes_are_bounded() {
        let bounds = CostBounds::new(&configured());
        let within = [
            "m=19456,t=2,p=1",   // OWASP, authd's default
            "m=65536,t=3,p=4",   // Node's argon2, argon2-cffi
            "m=65536,t=4,p=1",   // PHP
            "m=102400,t=2,p=8",  // Django
            "m=262144,t=1,p=16", // the ceilings themselves
            "m=8,t=1,p=1",
        ];
        for params in within {
            for variant in ["argon2id", "argon2i", "argon2d"] {
                let stored = argon2(variant, params);
                assert_eq!(bounds.check(&stored), Ok(()), "{stored}");
            }
        }
        let over = [
            (
                "m=4194304,t=1,p=1",
                OverCost::Argon2Memory {
                    kib: 4194304,
                    max: ARGON2_MAX_MEMORY_KIB,
                },
            ),
            (
                "m=262145,t=1,p=1",
                OverCost::Argon2Memory {
                    kib: 262145,
                    max: ARGON2_MAX_MEMORY_KIB,
                },
            ),
            (
                "m=262144,t=3,p=1",
                OverCost::Argon2Work {
                    work: 786432,
                    max: ARGON2_MAX_WORK_KIB,
                },
            ),
            (
                "m=64,t=4097,p=1",
                OverCost::Argon2Work {
                    work: 262208,
                    max: ARGON2_MAX_WORK_KIB,
                },
            ),
            (
                "m=1024,t=1,p=17",
                OverCost::Argon2Lanes { lanes: 17, max: 16 },
            ),
        ];
        for (params, want) in over {
            let stored = argon2("argon2id", params);
            assert_eq!(bounds.check(&stored), Err(want), "{stored}");
        }
    }

    #[test]
    fn costs_that_cannot_be_read_are_left_to_the_format_checks() {
        let bounds = CostBounds::new(&configured());
        for unreadable in [
            String::new(),
            "plaintext password".to_owned(),
            "$2b$1x$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".to_owned(),
            "$2b$99".to_owned(),
            "$2b$".to_owned(),
            "$argon2id$v=19$m=abc,t=1,p=1$c2FsdA$aGFzaA".to_owned(),
            // Parameters argon2 refuses: it computes nothing for them.
            "$argon2id$v=19$m=4,t=1,p=1$c2l4dGVlbiBieXRlIHNhbA$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            "$argon2id$v=19$m=65536,t=0,p=1$c2l4dGVlbiBieXRlIHNhbA$aGFzaGhhc2hoYXNoaGFzaA"
                .to_owned(),
            "$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA".to_owned(),
            "5f4dcc3b5aa765d61d8327deb882cf99".to_owned(),
        ] {
            assert_eq!(bounds.check(&unreadable), Ok(()), "{unreadable:?}");
        }
        assert_eq!(bcrypt_cost("$2b$10$"), Some(10));
        assert_eq!(bcrypt_cost("$2b$1$x"), None);
        assert_eq!(bcrypt_cost("$2b$+1$x"), None);
    }
}
