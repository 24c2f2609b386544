//! Validators' signed evaluations of models (EIP-712).
//!
//! A validator evaluates a model on data it holds and signs
//! `Attestation(bytes32 model,bytes32 dataset,string metric,uint64 valueMicros,uint64 issuedAtMs)`
//! under the domain `{name: "caravan", version: "1"}` with its Ethereum key — any wallet can sign
//! it with `eth_signTypedData_v4`. The economy recovers the signer from the signature and accepts
//! the attestation only if it is the validator named, so anyone replaying the log re-checks every
//! signature. An accepted attestation makes the validator a member of the model's validator role:
//! it shares the validator part of the model's revenue from then on.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::Address;
use crate::asset::AssetId;
use crate::codec::{DecodeError, Decoder, Encoder};
use crate::hash::{Hash32, hex_lower, keccak256, keccak256_parts, parse_hex_exact};

/// The longest metric name, in bytes.
pub const MAX_METRIC_LEN: usize = 64;

const TYPE: &str =
    "Attestation(bytes32 model,bytes32 dataset,string metric,uint64 valueMicros,uint64 issuedAtMs)";
const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version)";

/// A 65-byte `r ‖ s ‖ v` signature, written as 0x and 130 hex digits.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Signature65(pub [u8; 65]);

impl std::fmt::Debug for Signature65 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Signature65 {
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex_lower(&self.0))
    }

    /// Parses 130 hex digits; the `0x` prefix may be left out.
    pub fn parse(text: &str) -> Result<Signature65, String> {
        parse_hex_exact::<65>(&with_prefix(text))
            .map(Signature65)
            .map_err(|why| format!("a signature is 65 bytes, 0x and 130 hex digits: {why}"))
    }
}

fn with_prefix(text: &str) -> String {
    let text = text.trim();
    if text.starts_with("0x") {
        text.to_owned()
    } else {
        format!("0x{text}")
    }
}

/// A secp256k1 secret key written as 64 hex digits (the `0x` prefix may be left out), as key
/// files hold it.
pub fn parse_secret_key(text: &str) -> Result<[u8; 32], String> {
    let secret = parse_hex_exact::<32>(&with_prefix(text))?;
    k256::ecdsa::SigningKey::from_bytes((&secret).into())
        .map_err(|_| "the number is not a valid secp256k1 secret key".to_string())?;
    Ok(secret)
}

/// Signs a 32-byte digest: the 65-byte `r ‖ s ‖ v` Ethereum expects (v is 27 or 28).
pub fn sign_digest(key: &k256::ecdsa::SigningKey, digest: &Hash32) -> Signature65 {
    let (signature, recovery) = key
        .sign_prehash_recoverable(&digest.0)
        .expect("a 32-byte digest can be signed");
    let mut bytes = [0u8; 65];
    bytes[..64].copy_from_slice(&signature.to_bytes());
    bytes[64] = 27 + recovery.to_byte();
    Signature65(bytes)
}

impl Serialize for Signature65 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Signature65 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Signature65::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A validator's signed evaluation of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub model: AssetId,
    pub validator: Address,
    /// The hash of the data the model was evaluated on (which the validator keeps).
    pub dataset: Hash32,
    /// What was measured, e.g. `accuracy`.
    pub metric: String,
    /// The measured value in millionths (0.9713 is 971300).
    pub value_micros: u64,
    /// When the validator signed it, milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    pub signature: Signature65,
}

/// A `uint64` as the 32-byte word EIP-712 and the ABI encode it as.
pub fn word(value: u64) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[24..].copy_from_slice(&value.to_be_bytes());
    word
}

/// The EIP-712 digest a validator signs for these fields.
pub fn attestation_digest(
    model: &AssetId,
    dataset: &Hash32,
    metric: &str,
    value_micros: u64,
    issued_at_ms: u64,
) -> Hash32 {
    typed_data_digest(&keccak256_parts(&[
        &keccak256(TYPE.as_bytes()).0,
        &model.0.0,
        &dataset.0,
        &keccak256(metric.as_bytes()).0,
        &word(value_micros),
        &word(issued_at_ms),
    ]))
}

/// The digest a wallet signs for a message with this EIP-712 struct hash under caravan's domain
/// `{name: "caravan", version: "1"}` — what `eth_signTypedData_v4` signs.
pub fn typed_data_digest(struct_hash: &Hash32) -> Hash32 {
    let domain = keccak256_parts(&[
        &keccak256(DOMAIN_TYPE.as_bytes()).0,
        &keccak256(b"caravan").0,
        &keccak256(b"1").0,
    ]);
    keccak256_parts(&[b"\x19\x01", &domain.0, &struct_hash.0])
}

/// The digest a wallet signs for `message` with `personal_sign` (EIP-191, version 0x45):
/// keccak-256 of `"\x19Ethereum Signed Message:\n"`, the message's length in decimal, and the
/// message.
pub fn personal_message_digest(message: &[u8]) -> Hash32 {
    let prefix = format!("\x19Ethereum Signed Message:\n{}", message.len());
    keccak256_parts(&[prefix.as_bytes(), message])
}

/// The address whose key made `signature` over `digest`.
pub fn recover(digest: &Hash32, signature: &Signature65) -> Result<Address, String> {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let parsed = Signature::from_slice(&signature.0[..64])
        .map_err(|e| format!("not a valid signature: {e}"))?;
    let v = signature.0[64];
    let recovery = RecoveryId::from_byte(if v >= 27 { v - 27 } else { v })
        .ok_or("the signature's recovery byte v must be 27 or 28")?;
    let key = VerifyingKey::recover_from_prehash(&digest.0, &parsed, recovery)
        .map_err(|e| format!("no key made this signature: {e}"))?;
    Ok(address_of(&key))
}

/// The Ethereum address of a public key.
pub fn address_of(key: &k256::ecdsa::VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&hash.0[12..]);
    Address(address)
}

impl Attestation {
    /// The canonical bytes (used in events and snapshots).
    pub(crate) fn encode_into(&self, e: &mut Encoder) {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&self.signature.0[..32]);
        s.copy_from_slice(&self.signature.0[32..64]);
        e.hash(&self.model.0)
            .address(&self.validator)
            .hash(&self.dataset)
            .str(&self.metric)
            .u64(self.value_micros)
            .u64(self.issued_at_ms)
            .hash(&Hash32(r))
            .hash(&Hash32(s))
            .u8(self.signature.0[64]);
    }

    pub(crate) fn decode_from(d: &mut Decoder) -> Result<Attestation, DecodeError> {
        let model = AssetId(d.hash()?);
        let validator = d.address()?;
        let dataset = d.hash()?;
        let metric = d.str()?;
        let value_micros = d.u64()?;
        let issued_at_ms = d.u64()?;
        let mut signature = [0u8; 65];
        signature[..32].copy_from_slice(&d.hash()?.0);
        signature[32..64].copy_from_slice(&d.hash()?.0);
        signature[64] = d.u8()?;
        Ok(Attestation {
            model,
            validator,
            dataset,
            metric,
            value_micros,
            issued_at_ms,
            signature: Signature65(signature),
        })
    }

    /// Signs an attestation with the validator's secret key (the validator is its address).
    pub fn sign(
        secret: &[u8; 32],
        model: AssetId,
        dataset: Hash32,
        metric: &str,
        value_micros: u64,
        issued_at_ms: u64,
    ) -> Result<Attestation, String> {
        let key = k256::ecdsa::SigningKey::from_bytes(secret.into())
            .map_err(|_| "not a secp256k1 secret key".to_string())?;
        let digest = attestation_digest(&model, &dataset, metric, value_micros, issued_at_ms);
        Ok(Attestation {
            model,
            validator: address_of(key.verifying_key()),
            dataset,
            metric: metric.to_owned(),
            value_micros,
            issued_at_ms,
            signature: sign_digest(&key, &digest),
        })
    }

    pub fn digest(&self) -> Hash32 {
        attestation_digest(
            &self.model,
            &self.dataset,
            &self.metric,
            self.value_micros,
            self.issued_at_ms,
        )
    }

    /// Checks the fields and that the validator named made the signature.
    pub fn verify(&self) -> Result<(), String> {
        if self.metric.is_empty() || self.metric.len() > MAX_METRIC_LEN {
            return Err(format!(
                "the metric name must be 1 to {MAX_METRIC_LEN} bytes, got {}",
                self.metric.len()
            ));
        }
        let signer = recover(&self.digest(), &self.signature)?;
        if signer != self.validator {
            return Err(format!(
                "the signature was made by {signer}, not by the validator {}; sign the attestation with the validator's own key",
                self.validator
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first anvil/hardhat development key and its well-known address.
    const SECRET: [u8; 32] = [
        0xac, 0x09, 0x74, 0xbe, 0xc3, 0x9a, 0x17, 0xe3, 0x6b, 0xa4, 0xa6, 0xb4, 0xd2, 0x38, 0xff,
        0x94, 0x4b, 0xac, 0xb4, 0x78, 0xcb, 0xed, 0x5e, 0xfc, 0xae, 0x78, 0x4d, 0x7b, 0xf4, 0xf2,
        0xff, 0x80,
    ];

    #[test]
    fn a_signed_attestation_verifies_and_any_change_breaks_it() {
        let model = AssetId(keccak256(b"model"));
        let attestation = Attestation::sign(
            &SECRET,
            model,
            keccak256(b"held-out"),
            "accuracy",
            971_300,
            5,
        )
        .unwrap();
        assert_eq!(
            attestation.validator.to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        attestation.verify().unwrap();
        let inflated = Attestation {
            value_micros: 999_999,
            ..attestation.clone()
        };
        assert!(
            inflated
                .verify()
                .unwrap_err()
                .contains("not by the validator")
        );
        let impostor = Attestation {
            validator: Address::from_label("someone else"),
            ..attestation.clone()
        };
        assert!(impostor.verify().is_err());
        // The same typed data signed by eth-account (Python), `eth_signTypedData_v4`'s encoding:
        // the digest and the deterministic (RFC 6979) signature match byte for byte.
        assert_eq!(
            attestation.digest().to_hex(),
            "0xeaa00379dfd8ba6ef34c6acb935d8c76e3539406037cab350bfd985fd43bab70"
        );
        assert_eq!(
            attestation.signature.to_hex(),
            "0xa5cd3804f5671a0ec2bbe6ebc96466adb46b1c52546fa0e7d7d28426af155521262a4e777570a85341bed0c6f0c7f52bf54fefb3e23231057803f903488648571c"
        );
        let json = serde_json::to_string(&attestation).unwrap();
        let back: Attestation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, attestation);
    }
}
