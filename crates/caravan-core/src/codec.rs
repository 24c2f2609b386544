//! The canonical binary encoding: fixed-width big-endian integers, length-prefixed byte strings,
//! one tag byte per enum variant. One value has exactly one encoding, so hashes of encodings are
//! stable ids, and decoding rejects anything the encoder could not have written.

use crate::address::Address;
use crate::hash::Hash32;

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt encoding at byte {offset}: {what}")]
pub struct DecodeError {
    pub offset: usize,
    pub what: String,
}

/// Appends canonical encodings to a byte buffer.
#[derive(Default)]
pub struct Encoder {
    pub bytes: Vec<u8>,
}

impl Encoder {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u128(&mut self, v: u128) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn address(&mut self, v: &Address) -> &mut Self {
        self.bytes.extend_from_slice(&v.0);
        self
    }
    pub fn hash(&mut self, v: &Hash32) -> &mut Self {
        self.bytes.extend_from_slice(&v.0);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.len(v.len());
        self.bytes.extend_from_slice(v.as_bytes());
        self
    }
    /// A collection length; collections are bounded far below `u32::MAX` by the domain limits.
    pub fn len(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).expect("collection longer than u32::MAX"))
    }
}

/// Reads canonical encodings back, failing with the offset of the first bad byte.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Decoder { bytes, offset: 0 }
    }

    pub fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.offset,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() - self.offset < n {
            return Err(self.error(format!(
                "needs {n} more bytes, {} left",
                self.bytes.len() - self.offset
            )));
        }
        let slice = &self.bytes[self.offset..self.offset + n];
        self.offset += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array()?))
    }
    pub fn address(&mut self) -> Result<Address, DecodeError> {
        Ok(Address(self.array()?))
    }
    pub fn hash(&mut self) -> Result<Hash32, DecodeError> {
        Ok(Hash32(self.array()?))
    }
    /// A collection length, checked against what is left so a corrupt length cannot allocate
    /// gigabytes: every element takes at least `min_element_bytes`.
    pub fn len(&mut self, min_element_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_element_bytes.max(1)) > self.bytes.len() - self.offset {
            return Err(self.error(format!("length {n} is longer than the bytes that remain")));
        }
        Ok(n)
    }
    pub fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.len(1)?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.error("text is not UTF-8"))
    }
    /// Fails unless every byte was consumed: trailing bytes mean a different value was encoded.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.offset != self.bytes.len() {
            return Err(self.error(format!("{} trailing bytes", self.bytes.len() - self.offset)));
        }
        Ok(())
    }
}
