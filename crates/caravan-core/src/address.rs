//! EVM account addresses: 20 bytes, displayed with the EIP-55 mixed-case checksum, parsed strictly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{hex_lower, keccak256, parse_hex_exact};

/// An EVM address. Every person, payer, node and token in caravan is one.
///
/// Shown to people (`Display`) with its EIP-55 checksum; written into JSON in lower case, the
/// machine form Ethereum's JSON-RPC uses — a checksum costs a keccak per address, which in a bundle
/// of a million leaves is most of the time spent writing it.
///
/// Parsing is strict: `0x` and exactly 40 hex digits. All-lower-case and all-upper-case input is
/// accepted as written; mixed case must carry a correct EIP-55 checksum, because a mistyped
/// mixed-case address is exactly the error a checksum exists to catch.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub const ZERO: Address = Address([0; 20]);

    /// The EIP-55 checksummed form, `0x` followed by 40 mixed-case hex digits.
    pub fn to_checksum(&self) -> String {
        let lower = hex_lower(&self.0);
        let digest = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (digest.0[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// An address derived from a label, for simulations and tests: the last 20 bytes of
    /// keccak256(label). Nobody holds a key for it unless they chose the label to match one.
    pub fn from_label(label: &str) -> Address {
        let digest = keccak256(label.as_bytes());
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&digest.0[12..]);
        Address(bytes)
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not an address: {0}")]
    Malformed(String),
    #[error(
        "address `{given}` has a wrong EIP-55 checksum; the checksummed form is {expected} (or write it all in lower case to skip the check)"
    )]
    BadChecksum { given: String, expected: String },
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = parse_hex_exact::<20>(text).map_err(AddressError::Malformed)?;
        let address = Address(bytes);
        let digits = &text[2..];
        let has_lower = digits.chars().any(|c| c.is_ascii_lowercase());
        let has_upper = digits.chars().any(|c| c.is_ascii_uppercase());
        if has_lower && has_upper {
            let expected = address.to_checksum();
            if expected != text {
                return Err(AddressError::BadChecksum {
                    given: text.to_string(),
                    expected,
                });
            }
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("0x{}", hex_lower(&self.0)))
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the EIP-55 specification.
    const EIP55: [&str; 4] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn checksums_match_eip55_vectors() {
        for vector in EIP55 {
            let parsed: Address = vector.to_lowercase().parse().unwrap();
            assert_eq!(parsed.to_checksum(), vector);
            assert_eq!(vector.parse::<Address>().unwrap(), parsed);
        }
    }

    #[test]
    fn wrong_mixed_case_is_rejected_with_the_right_form() {
        let wrong = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        match wrong.parse::<Address>() {
            Err(AddressError::BadChecksum { expected, .. }) => assert_eq!(expected, EIP55[0]),
            other => panic!("expected a checksum error, got {other:?}"),
        }
    }

    #[test]
    fn json_carries_lower_case_and_reads_either_form() {
        let address: Address = EIP55[0].parse().unwrap();
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(json, format!("\"{}\"", EIP55[0].to_lowercase()));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), address);
        assert_eq!(
            serde_json::from_str::<Address>(&format!("\"{}\"", EIP55[0])).unwrap(),
            address
        );
        assert!(
            serde_json::from_str::<Address>("\"0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"")
                .is_err()
        );
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x1234",
            "0xZZaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            " 0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        ] {
            assert!(
                matches!(bad.parse::<Address>(), Err(AddressError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(
            "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"
                .parse::<Address>()
                .is_ok()
        );
    }
}
