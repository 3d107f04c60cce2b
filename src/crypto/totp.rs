//! Time-based one-time passwords (RFC 6238, on HOTP of RFC 4226) as authenticator apps make
//! them: HMAC-SHA1, 6 digits, 30-second steps, a 160-bit secret shown to the user in base32
//! (RFC 4648) inside an `otpauth://` URI.
//!
//! A code is accepted for its own step and one step either side (clock skew), and only for a
//! step after the last one the user spent: the caller stores the step `verify` returns, so a
//! code cannot be replayed within its window.

use ring::hmac;
use subtle::ConstantTimeEq;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one.
const SKEW_STEPS: i64 = 1;
/// Bytes of a secret: 160 bits, the HMAC-SHA1 block RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// A TOTP secret. Never reaches `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it: base32, upper case, no padding.
    pub fn base32(&self) -> String {
        base32(&self.0)
    }

    /// The `otpauth://totp/` URI of RFC 6238's key-uri format, as authenticator apps read it
    /// from a QR code: the label is `issuer:account`, and `issuer` is repeated as a parameter.
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            percent(issuer),
            percent(account),
            self.base32(),
            percent(issuer),
        )
    }
}

/// The step that unix time `unix_secs` falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECONDS)
}

/// The HOTP value of `secret` at `counter`, with `digits` digits (RFC 4226 §5.3).
pub fn hotp(secret: &TotpSecret, counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret.0);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks four bytes.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The code for `step`, as the user's app shows it (zero-padded).
pub fn code_at(secret: &TotpSecret, step: i64) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(secret, counter, DIGITS),
        width = DIGITS as usize
    )
}

/// Checks `code` at unix time `now`: the step it matches (the current one or one either side),
/// if that step is after `last_used_step`. Store the step returned, so the code is spent.
/// Spaces in the code (as apps show it, `123 456`) are ignored.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now);
    // Every candidate is compared, in constant time, whichever matches.
    let mut matched = None;
    for step in (current - SKEW_STEPS)..=(current + SKEW_STEPS) {
        let fresh = last_used_step.is_none_or(|last| step > last);
        let equal: bool = code_at(secret, step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        if equal && fresh && step >= 0 && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// RFC 4648 base32, upper case, without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(&rfc_secret(), counter as u64, 6),
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn totp_matches_rfc_6238_appendix_b_for_sha1() {
        for (time, want) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            let step = u64::try_from(step_at(time)).unwrap();
            assert_eq!(hotp(&rfc_secret(), step, 8), want, "T = {time}");
        }
        // The 6-digit code authenticator apps show is the last six of the same value.
        assert_eq!(code_at(&rfc_secret(), step_at(1111111109)), "081804");
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_015;
        let current = step_at(now);
        for step in [current - 1, current, current + 1] {
            let code = code_at(&secret, step);
            assert_eq!(verify(&secret, &code, now, None), Some(step));
            // Spent: the same code, or any of its step or before, is refused afterwards.
            assert_eq!(verify(&secret, &code, now, Some(step)), None);
        }
        // Two steps away is too old or too early.
        assert_eq!(
            verify(&secret, &code_at(&secret, current - 2), now, None),
            None
        );
        assert_eq!(
            verify(&secret, &code_at(&secret, current + 2), now, None),
            None
        );
        // A later code after an earlier one is spent still counts.
        let next = code_at(&secret, current + 1);
        assert_eq!(
            verify(&secret, &next, now, Some(current)),
            Some(current + 1)
        );
    }

    #[test]
    fn malformed_codes_are_refused_and_spaces_are_ignored() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_000;
        let code = code_at(&secret, step_at(now));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(verify(&secret, &spaced, now, None).is_some());
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "１２３４５６",
            &format!("{code}0"),
        ] {
            assert_eq!(verify(&secret, bad, now, None), None, "{bad:?}");
        }
        let huge = "1".repeat(1 << 20);
        assert_eq!(verify(&secret, &huge, now, None), None);
    }

    #[test]
    fn base32_matches_rfc_4648_and_the_uri_is_what_apps_read() {
        for (input, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), want);
        }
        assert_eq!(rfc_secret().base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = rfc_secret().uri("authd", "ann+1@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/authd:ann%2B1%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=authd&algorithm=SHA1&digits=6&period=30"
        );
        assert!(!format!("{:?}", rfc_secret()).contains("GEZ"));
    }
}
