//! Exact money: amounts in a token's base units, shares in parts per million, and the one way
//! caravan splits an amount — largest remainders, so every split conserves value to the last unit.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::address::Address;

/// An amount in a token's base units (wei for an 18-decimal token). Never a float.
pub type Amount = u128;

/// A share in parts per million, at most 100% (`1_000_000`). The constructor enforces the bound,
/// so a `Ppm` above 100% cannot exist.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Ppm(u32);

impl Ppm {
    pub const ZERO: Ppm = Ppm(0);
    pub const ONE: Ppm = Ppm(1_000_000);

    /// A share of `parts` per million; an error above one million.
    pub fn new(parts: u32) -> Result<Ppm, String> {
        if parts > Self::ONE.0 {
            return Err(format!(
                "share {parts} ppm is above 100% (1000000 ppm); a share is a part of a whole"
            ));
        }
        Ok(Ppm(parts))
    }

    /// A share given in percent with up to four decimals, for people typing `12.5`.
    pub fn from_percent_text(text: &str) -> Result<Ppm, String> {
        let trimmed = text.trim().trim_end_matches('%');
        let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
        if whole.is_empty()
            || fraction.len() > 4
            || !whole
                .chars()
                .chain(fraction.chars())
                .all(|c| c.is_ascii_digit())
        {
            return Err(format!(
                "`{text}` is not a percentage; write it like 12.5 (at most four decimals)"
            ));
        }
        let whole: u32 = whole
            .parse()
            .map_err(|_| format!("`{text}` is too large for a percentage"))?;
        let fraction: u32 = format!("{fraction:0<4}").parse().unwrap_or(0);
        let parts = whole
            .checked_mul(10_000)
            .and_then(|w| w.checked_add(fraction))
            .ok_or_else(|| format!("`{text}` is too large for a percentage"))?;
        Ppm::new(parts)
    }

    pub fn parts(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Ppm {
    type Error = String;
    fn try_from(parts: u32) -> Result<Self, Self::Error> {
        Ppm::new(parts)
    }
}

impl From<Ppm> for u32 {
    fn from(share: Ppm) -> u32 {
        share.0
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{}.{:04}", self.0 / 10_000, self.0 % 10_000);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{text}%")
    }
}

impl std::str::FromStr for Ppm {
    type Err = String;
    /// Reads a percentage as [`Ppm::from_percent_text`] does: `"12.5%"`, `"12.5"`.
    fn from_str(text: &str) -> Result<Ppm, String> {
        Ppm::from_percent_text(text)
    }
}

impl fmt::Debug for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ppm", self.0)
    }
}

/// An ERC-20 token as caravan knows it: where it lives, how it is called and how many decimals a
/// whole token has. Amounts are always in base units; `decimals` only matters for display.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    pub address: Address,
    pub symbol: String,
    pub decimals: u8,
}

/// The longest token symbol accepted, in bytes.
pub const MAX_SYMBOL_LEN: usize = 16;
/// The most decimals a token may declare; 10^38 is the largest power of ten in a `u128`.
pub const MAX_DECIMALS: u8 = 38;

impl Token {
    /// Checks the symbol and decimals a token is registered with.
    pub fn validate(&self) -> Result<(), String> {
        if self.symbol.is_empty()
            || self.symbol.len() > MAX_SYMBOL_LEN
            || !self.symbol.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(format!(
                "token symbol `{}` must be 1 to {MAX_SYMBOL_LEN} ASCII letters or digits",
                self.symbol
            ));
        }
        if self.decimals > MAX_DECIMALS {
            return Err(format!(
                "token {} declares {} decimals; at most {MAX_DECIMALS} fit in 128-bit amounts",
                self.symbol, self.decimals
            ));
        }
        Ok(())
    }

    /// `amount` in whole tokens with all its decimals, trailing zeros trimmed: `12.5 USDC`.
    pub fn format(&self, amount: Amount) -> String {
        format!("{} {}", format_units(amount, self.decimals), self.symbol)
    }

    /// Parses a decimal amount in whole tokens (`12.5`) into base units, exactly.
    pub fn parse_amount(&self, text: &str) -> Result<Amount, String> {
        parse_units(text, self.decimals)
            .map_err(|why| format!("amount `{text}` for {}: {why}", self.symbol))
    }
}

/// `amount` base units as a decimal number of whole units with `decimals` places, trimmed.
pub fn format_units(amount: Amount, decimals: u8) -> String {
    if decimals == 0 {
        return amount.to_string();
    }
    let scale = 10u128.pow(decimals as u32);
    let whole = amount / scale;
    let fraction = amount % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0>width$}", width = decimals as usize);
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Parses a decimal number of whole units into base units; rejects more decimals than the token has.
pub fn parse_units(text: &str, decimals: u8) -> Result<Amount, String> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err("it is empty".into());
    }
    if !whole
        .chars()
        .chain(fraction.chars())
        .all(|c| c.is_ascii_digit())
    {
        return Err("write a plain decimal number such as 12.5".into());
    }
    if fraction.len() > decimals as usize {
        return Err(format!(
            "it has {} decimals but the token has only {decimals}",
            fraction.len()
        ));
    }
    let scale = 10u128.pow(decimals as u32);
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "it is too large".to_string())?
    };
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<width$}", width = decimals as usize)
            .parse()
            .map_err(|_| "it is too large".to_string())?
    };
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(|| "it is too large for a 128-bit amount".to_string())
}

/// `a * b / d` and its remainder, exact for every `u128` input (the product is held in 256 bits).
///
/// Panics if `d` is zero or the quotient does not fit in 128 bits (impossible when `b <= d`,
/// which is how splits call it).
pub fn mul_div_rem(a: u128, b: u128, d: u128) -> (u128, u128) {
    assert!(d != 0, "mul_div_rem: division by zero");
    if let Some(product) = a.checked_mul(b) {
        return (product / d, product % d);
    }
    let (high, low) = widening_mul(a, b);
    assert!(high < d, "mul_div_rem: quotient overflows 128 bits");
    // Restoring long division of the 256-bit (high, low) by d, one bit at a time.
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if carry == 1 || remainder >= d {
            remainder = remainder.wrapping_sub(d);
            quotient |= 1;
        }
    }
    (quotient, remainder)
}

fn widening_mul(a: u128, b: u128) -> (u128, u128) {
    let mask = u64::MAX as u128;
    let (a_hi, a_lo) = (a >> 64, a & mask);
    let (b_hi, b_lo) = (b >> 64, b & mask);
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    let middle = (lo_lo >> 64) + (hi_lo & mask) + (lo_hi & mask);
    let low = (lo_lo & mask) | (middle << 64);
    let high = hi_hi + (hi_lo >> 64) + (lo_hi >> 64) + (middle >> 64);
    (high, low)
}

/// Splits `total` in proportion to `weights`, exactly: each part gets the floor of its exact share,
/// and the units left over go one each to the parts with the largest remainders, ties to the
/// earlier position. The parts always sum to `total`; a zero weight always gets zero.
///
/// Callers give weights in a canonical order (manifest order, or sorted by address), which makes
/// the tie-break deterministic on every machine. Panics if every weight is zero and `total > 0`:
/// there would be nobody to pay, which the callers rule out before.
pub fn split_largest_remainder(total: Amount, weights: &[u128]) -> Vec<Amount> {
    let weight_sum: u128 = weights
        .iter()
        .try_fold(0u128, |sum, w| sum.checked_add(*w))
        .expect("split weights overflow u128");
    if total == 0 {
        return vec![0; weights.len()];
    }
    assert!(
        weight_sum > 0,
        "split_largest_remainder: {total} to split over zero weight"
    );
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut assigned: u128 = 0;
    for (index, weight) in weights.iter().enumerate() {
        let (quotient, remainder) = mul_div_rem(total, *weight, weight_sum);
        assigned += quotient;
        parts.push(quotient);
        if remainder > 0 {
            remainders.push((remainder, index));
        }
    }
    let left_over = (total - assigned) as usize;
    debug_assert!(left_over <= remainders.len());
    if left_over > 0 {
        let by_largest = |a: &(u128, usize), b: &(u128, usize)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        if left_over < remainders.len() {
            remainders.select_nth_unstable_by(left_over - 1, by_largest);
        }
        for (_, index) in &remainders[..left_over] {
            parts[*index] += 1;
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ppm_rejects_more_than_the_whole() {
        assert!(Ppm::new(1_000_001).unwrap_err().contains("above 100%"));
        assert_eq!(Ppm::from_percent_text("12.5").unwrap().parts(), 125_000);
        assert_eq!(Ppm::from_percent_text("100%").unwrap(), Ppm::ONE);
        assert!(Ppm::from_percent_text("1.23456").is_err());
        assert!(Ppm::from_percent_text("abc").is_err());
        assert_eq!(Ppm::new(125_000).unwrap().to_string(), "12.5%");
    }

    #[test]
    fn units_format_and_parse_exactly() {
        let usdc = Token {
            address: Address::ZERO,
            symbol: "USDC".into(),
            decimals: 6,
        };
        assert_eq!(usdc.parse_amount("12.5").unwrap(), 12_500_000);
        assert_eq!(usdc.format(12_500_000), "12.5 USDC");
        assert_eq!(usdc.format(1), "0.000001 USDC");
        assert!(
            usdc.parse_amount("0.0000001")
                .unwrap_err()
                .contains("only 6")
        );
        assert!(usdc.parse_amount("1e3").is_err());
        assert!(usdc.parse_amount("").is_err());
    }

    #[test]
    fn largest_remainder_breaks_ties_towards_earlier_positions() {
        assert_eq!(split_largest_remainder(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(split_largest_remainder(2, &[1, 1, 1]), vec![1, 1, 0]);
        assert_eq!(split_largest_remainder(7, &[0, 5, 0]), vec![0, 7, 0]);
        assert_eq!(split_largest_remainder(0, &[0, 0]), vec![0, 0]);
    }

    #[test]
    fn mul_div_is_exact_beyond_128_bits() {
        let (q, r) = mul_div_rem(u128::MAX, u128::MAX - 1, u128::MAX);
        assert_eq!((q, r), (u128::MAX - 1, 0));
        let (q, r) = mul_div_rem(u128::MAX, 3, 7);
        // u128::MAX * 3 = 7q + r
        assert_eq!(q, u128::MAX / 7 * 3 + (u128::MAX % 7) * 3 / 7);
        assert!(r < 7);
    }

    proptest! {
        #![proptest_config(ProptestConfig { rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
        #[test]
        fn split_conserves_every_unit(total in any::<u128>(), weights in proptest::collection::vec(0u128..=u64::MAX as u128, 1..50)) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let parts = split_largest_remainder(total, &weights);
            let sum = parts.iter().fold(0u128, |s, p| s.checked_add(*p).unwrap());
            prop_assert_eq!(sum, total);
            for (part, weight) in parts.iter().zip(&weights) {
                if *weight == 0 { prop_assert_eq!(*part, 0); }
            }
        }

        #[test]
        fn mul_div_matches_a_slow_reference(a in any::<u128>(), b in any::<u64>(), d in 1u128..) {
            prop_assume!(b as u128 <= d);
            let (q, r) = mul_div_rem(a, b as u128, d);
            prop_assert!(r < d);
            // q*d + r == a*b, checked in 256 bits
            let (ph, pl) = widening_mul(q, d);
            let (low, carry) = pl.overflowing_add(r);
            let (eh, el) = widening_mul(a, b as u128);
            prop_assert_eq!((ph + carry as u128, low), (eh, el));
        }
    }
}
