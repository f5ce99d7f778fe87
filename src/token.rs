//! Auth tokens: generation, the well-formedness check, and the SHA-256 kept at rest.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRng as _;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Length of a token as it appears in the cookie: 32 bytes in base64url without padding.
pub const TOKEN_LEN: usize = 43;

/// A raw auth token: 32 bytes from the operating system's CSPRNG.
///
/// It exists only in the cookie and in memory for the length of a request; stores only ever
/// see its [`TokenHash`]. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; 32]);

impl Token {
    /// A fresh token from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Store(Box::new(e)))?;
        Ok(Token(bytes))
    }

    /// Parses a cookie value. Anything but exactly 43 base64url characters that decode to
    /// 32 bytes (canonically: no stray trailing bits) is refused, without any allocation.
    ///
    /// ```
    /// use slates::Token;
    /// let t = Token::generate().unwrap();
    /// assert_eq!(Token::parse(&t.encode()), Some(t));
    /// assert_eq!(Token::parse("short"), None);
    /// assert_eq!(Token::parse(&"!".repeat(43)), None);
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        Self::parse_bytes(value.as_bytes())
    }

    /// [`parse`](Self::parse) of the bytes of a cookie value.
    pub(crate) fn parse_bytes(value: &[u8]) -> Option<Self> {
        let chars: &[u8; TOKEN_LEN] = value.try_into().ok()?;
        let sextet = |c: u8| SEXTETS[usize::from(c)];
        // Ten groups of four characters make 30 bytes, each group's three written as four
        // (the fourth is the next group's first, written over); the last three characters
        // make 2 bytes and 2 bits that must be zero (a canonical encoding), as
        // `URL_SAFE_NO_PAD` decodes. A character that is not base64url reads `INVALID`
        // (all bits set), which sets bits above the 24 that four valid ones fill: one test
        // for the whole token.
        let mut bytes = [0u8; 32];
        let mut spill = 0;
        for (g, c) in chars[..40].chunks_exact(4).enumerate() {
            let n =
                (sextet(c[0]) << 18) | (sextet(c[1]) << 12) | (sextet(c[2]) << 6) | sextet(c[3]);
            spill |= n;
            bytes[3 * g..3 * g + 4].copy_from_slice(&(n << 8).to_be_bytes());
        }
        let n = (sextet(chars[40]) << 12) | (sextet(chars[41]) << 6) | sextet(chars[42]);
        spill |= n << 6;
        if spill >> 24 != 0 || n & 0b11 != 0 {
            return None;
        }
        bytes[30..].copy_from_slice(&((n >> 2) as u16).to_be_bytes());
        Some(Token(bytes))
    }

    /// The cookie value: base64url without padding, 43 characters.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The SHA-256 of the token, the only form a store sees.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(hash {})", self.hash().short())
    }
}

/// The SHA-256 of a token. Its lowercase hex form is the `_id` of the token's `_auth` document.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The 64-character lowercase hex form stored as `_id`.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 0xf) as usize] as char);
        }
        s
    }

    /// Parses the hex form back (64 lowercase hex characters).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(TokenHash(out))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex characters: enough to trace a request in logs, useless to an attacker.
    pub fn short(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(8);
        hex
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.short())
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Marks a byte that is not a base64url character in [`SEXTETS`].
const INVALID: u32 = u32::MAX;

/// The value of each base64url character (RFC 4648 section 5); [`INVALID`] for any other
/// byte.
const SEXTETS: [u32; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u32;
        i += 1;
    }
    table
};

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_uniqueness() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a, b);
        let enc = a.encode();
        assert_eq!(enc.len(), TOKEN_LEN);
        assert!(enc
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(Token::parse(&enc), Some(a.clone()));
        assert_eq!(TokenHash::from_hex(&a.hash().to_hex()), Some(a.hash()));
    }

    #[test]
    fn sha256_of_known_bytes() {
        // SHA-256 of 32 zero bytes.
        let t = Token([0; 32]);
        assert_eq!(
            t.hash().to_hex(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert_eq!(t.hash().short(), "66687aad");
    }

    proptest::proptest! {
        /// The hand-written decoder decides exactly as the base64 crate's canonical
        /// `URL_SAFE_NO_PAD` decoding of 32 bytes, on any 43 characters drawn mostly from
        /// the alphabet (so that most are valid and the last character's stray bits vary).
        #[test]
        fn parse_agrees_with_the_base64_crate(value in proptest::prop_oneof![
            3 => "[A-Za-z0-9_-]{43}",
            1 => "[A-Za-z0-9_=+/!é-]{40}[A-Za-z0-9_=-]{3}",
            1 => "[A-Za-z0-9_-]{0,50}",
        ]) {
            let mut expected = [0u8; 32];
            let reference = match URL_SAFE_NO_PAD.decode_slice(value.as_bytes(), &mut expected) {
                Ok(32) if value.len() == TOKEN_LEN => Some(Token(expected)),
                _ => None,
            };
            proptest::prop_assert_eq!(Token::parse(&value), reference);
        }

        #[test]
        fn parse_round_trips(bytes in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let t = Token(bytes);
            proptest::prop_assert_eq!(Token::parse(&t.encode()), Some(t));
        }
    }

    #[test]
    fn refuses_malformed() {
        let good = Token::generate().unwrap().encode();
        assert!(Token::parse(&good[..42]).is_none());
        assert!(Token::parse(&format!("{good}A")).is_none());
        let mut plus = good.clone();
        plus.replace_range(0..1, "+");
        assert!(
            Token::parse(&plus).is_none(),
            "standard alphabet is refused"
        );
        let mut pad = good.clone();
        pad.replace_range(42..43, "=");
        assert!(Token::parse(&pad).is_none());
        // Non-canonical last character (stray low bits) is refused.
        let mut noncanon = "A".repeat(42);
        noncanon.push('B');
        assert!(Token::parse(&noncanon).is_none());
        assert!(Token::parse(&"é".repeat(21)).is_none());
        assert!(Token::parse("").is_none());
        // Any one byte outside the alphabet, at any position, in a token otherwise valid.
        for pos in 0..TOKEN_LEN {
            for bad in [b'=', b'+', b'/', b'.', b' ', 0, 0x80, 0xff] {
                let mut value = good.as_bytes().to_vec();
                value[pos] = bad;
                assert!(Token::parse_bytes(&value).is_none(), "{bad} at {pos}");
            }
        }
    }
}
