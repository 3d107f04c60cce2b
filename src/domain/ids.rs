use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id, so rows insert in index order.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Reads an id sent by a caller or taken from a token.
            pub fn parse(raw: &str) -> Option<Self> {
                Uuid::try_parse(raw).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Identifies a user; the `sub` claim.
    UserId
);
id_type!(
    /// Identifies a session (one login and its chain of refresh tokens); the `sid` claim.
    SessionId
);
