//! Keccak-256, the hash Ethereum uses, and the 32-byte digest type every id and root is made of.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tiny_keccak::{Hasher, Keccak};

/// A 32-byte digest: asset ids, event hashes, Merkle nodes and roots.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    pub const ZERO: Hash32 = Hash32([0; 32]);

    /// Lower-case hex with a `0x` prefix, as Ethereum tools print a `bytes32`.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex_lower(&self.0))
    }

    /// The first bytes as hex, for tables where the whole digest would not fit.
    pub fn short(&self) -> String {
        format!("0x{}…", hex_lower(&self.0[..4]))
    }
}

/// Keccak-256 of one byte string.
pub fn keccak256(data: &[u8]) -> Hash32 {
    keccak256_parts(&[data])
}

/// Keccak-256 of the concatenation of `parts`, without building the concatenation.
pub fn keccak256_parts(parts: &[&[u8]]) -> Hash32 {
    let mut hasher = Keccak::v256();
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    Hash32(out)
}

pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    out
}

/// Decodes exactly `N` bytes of hex after a mandatory `0x` prefix.
pub fn parse_hex_exact<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("`{text}` must start with 0x"))?;
    if digits.len() != N * 2 {
        return Err(format!(
            "`{text}` has {} hex digits; expected {}",
            digits.len(),
            N * 2
        ));
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.as_bytes().chunks(2).enumerate() {
        let high = hex_digit(pair[0]);
        let low = hex_digit(pair[1]);
        match (high, low) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => {
                return Err(format!(
                    "`{text}` contains a character that is not hex near position {}",
                    2 + i * 2
                ));
            }
        }
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Hash32 {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_hex_exact::<32>(text).map(Hash32)
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_input_is_the_ethereum_constant() {
        assert_eq!(
            keccak256(b"").to_hex(),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let h = keccak256(b"caravan");
        assert_eq!(h.to_hex().parse::<Hash32>().unwrap(), h);
        assert!("1234".parse::<Hash32>().unwrap_err().contains("0x"));
        assert!(
            "0x12"
                .parse::<Hash32>()
                .unwrap_err()
                .contains("expected 64")
        );
        let bad = format!("0x{}", "g".repeat(64));
        assert!(bad.parse::<Hash32>().unwrap_err().contains("not hex"));
    }
}
