//! How a login was authenticated: the access token's `amr` claim (RFC 8176).

/// The methods a session's login used. A recovery code counts as a one-time password: it is
/// a second factor the user holds, as the authenticator app is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethods {
    /// The password alone (`pwd`).
    #[default]
    Password,
    /// The password and a one-time code (`pwd`, `otp`).
    PasswordAndOtp,
}

impl AuthMethods {
    /// The RFC 8176 values, as the `amr` claim lists them.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Self::Password => &["pwd"],
            Self::PasswordAndOtp => &["pwd", "otp"],
        }
    }

    /// As the session row keeps it: the values, space separated.
    pub fn as_stored(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::PasswordAndOtp => "pwd otp",
        }
    }

    /// From the session row. NULL (sessions from before second factors) and anything unknown
    /// is a password login: never more than was proven.
    pub fn from_stored(stored: Option<&str>) -> Self {
        match stored {
            Some("pwd otp") => Self::PasswordAndOtp,
            _ => Self::Password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_read_back_and_unknown_ones_prove_nothing_more() {
        for methods in [AuthMethods::Password, AuthMethods::PasswordAndOtp] {
            assert_eq!(AuthMethods::from_stored(Some(methods.as_stored())), methods);
        }
        assert_eq!(AuthMethods::from_stored(None), AuthMethods::Password);
        assert_eq!(
            AuthMethods::from_stored(Some("otp pwd hwk")),
            AuthMethods::Password
        );
        assert_eq!(AuthMethods::PasswordAndOtp.values(), ["pwd", "otp"]);
    }
}
