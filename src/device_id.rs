//! [`DeviceId`]: the public name of one login (one `_auth` record), safe to show and to put
//! in URLs.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRng as _;

use crate::error::{Error, Result};

/// Length of a device id: 16 bytes in base64url without padding.
pub const DEVICE_ID_LEN: usize = 22;

/// The public id of a device (one login): 128 bits from the operating system's CSPRNG,
/// drawn at login independently of the token, so it is neither the token nor its hash and
/// nothing about the token can be learnt from it (nor the other way round). Showing it to
/// the user, in a page or a URL, gives no access: ending a device by id only works for the
/// id's own user.
///
/// ```
/// use slates::DeviceId;
/// let id = DeviceId::generate().unwrap();
/// assert_eq!(id.as_str().len(), 22);
/// assert_eq!(DeviceId::parse(id.as_str()), Some(id));
/// assert_eq!(DeviceId::parse("not an id"), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceId([u8; DEVICE_ID_LEN]);

impl DeviceId {
    /// A fresh id from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 16];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Store(Box::new(e)))?;
        let mut text = [0u8; DEVICE_ID_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut text)
            .expect("16 bytes are 22 base64url characters");
        debug_assert_eq!(written, DEVICE_ID_LEN);
        Ok(DeviceId(text))
    }

    /// Parses an id as shown to users: exactly 22 base64url characters that decode to 16
    /// bytes (canonically). Anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != DEVICE_ID_LEN {
            return None;
        }
        let mut bytes = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(value.as_bytes(), &mut bytes) {
            Ok(16) => Some(DeviceId(value.as_bytes().try_into().ok()?)),
            _ => None,
        }
    }

    /// The id as text (22 base64url characters).
    pub fn as_str(&self) -> &str {
        // Held inline (no allocation of its own: a token record copies it on every lookup),
        // and only ever base64url characters, which are ASCII.
        std::str::from_utf8(&self.0).expect("a device id is base64url text")
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.as_str())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_differ_and_round_trip() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| DeviceId::generate().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            assert_eq!(DeviceId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_malformed() {
        let good = DeviceId::generate().unwrap().to_string();
        assert!(DeviceId::parse(&good[..21]).is_none());
        assert!(DeviceId::parse(&format!("{good}A")).is_none());
        assert!(DeviceId::parse(&"+".repeat(22)).is_none());
        // Stray low bits in the last character.
        assert!(DeviceId::parse(&format!("{}B", "A".repeat(21))).is_none());
        assert!(DeviceId::parse("").is_none());
    }
}
