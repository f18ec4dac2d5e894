//! Denominations, integer amounts with checked arithmetic, and exact decimal amounts with 18
//! decimal places (prices per block, as in Akash's `sdk.Dec`).

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};

/// Number of decimal places of [`DecAmount`].
pub const DEC_PLACES: u32 = 18;
/// One whole unit in [`DecAmount`]'s atto representation.
pub const DEC_ONE: u128 = 1_000_000_000_000_000_000;

/// Why an amount or denomination is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount overflows: the result exceeds what an amount can hold")]
    Overflow,
    #[error("amount underflows: the result would be negative")]
    Underflow,
    #[error("invalid amount `{0}`: expected a non-negative integer")]
    InvalidInteger(String),
    #[error("invalid decimal `{0}`: expected a non-negative number with at most 18 decimal places")]
    InvalidDecimal(String),
    #[error(
        "invalid denomination `{0}`: expected 2 to 64 characters of [a-z0-9/], starting with a letter"
    )]
    InvalidDenom(String),
    #[error("invalid coin `{0}`: expected an amount followed by a denomination, like `1000ugrid`")]
    InvalidCoin(String),
}

/// A denomination such as `ugrid` or `uusdc`. Always valid once constructed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize)]
pub struct Denom(String);

impl Denom {
    pub fn new(s: &str) -> Result<Self, AmountError> {
        let ok_len = (2..=64).contains(&s.len());
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '/');
        if ok_len && first_ok && rest_ok {
            Ok(Denom(s.to_string()))
        } else {
            Err(AmountError::InvalidDenom(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl BorshDeserialize for Denom {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let s = String::deserialize_reader(reader)?;
        Denom::new(&s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl fmt::Display for Denom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Denom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Denom({})", self.0)
    }
}

impl FromStr for Denom {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Denom::new(s)
    }
}

impl serde::Serialize for Denom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Denom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Denom::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Checked integer arithmetic on base-unit amounts (`u128`).
pub trait CheckedAmount: Sized {
    fn add_checked(self, other: Self) -> Result<Self, AmountError>;
    fn sub_checked(self, other: Self) -> Result<Self, AmountError>;
}

impl CheckedAmount for u128 {
    fn add_checked(self, other: Self) -> Result<Self, AmountError> {
        self.checked_add(other).ok_or(AmountError::Overflow)
    }
    fn sub_checked(self, other: Self) -> Result<Self, AmountError> {
        self.checked_sub(other).ok_or(AmountError::Underflow)
    }
}

/// An integer amount of one denomination, in base units (for example `ugrid`).
#[derive(
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Coin {
    pub denom: Denom,
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    #[serde(with = "u128_string")]
    pub amount: u128,
}

impl Coin {
    pub fn new(amount: u128, denom: &Denom) -> Self {
        Coin { denom: denom.clone(), amount }
    }
}

impl fmt::Display for Coin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.denom)
    }
}

impl FromStr for Coin {
    type Err = AmountError;
    /// Parses `1000ugrid`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| AmountError::InvalidCoin(s.into()))?;
        let (num, denom) = s.split_at(split);
        if num.is_empty() {
            return Err(AmountError::InvalidCoin(s.into()));
        }
        let amount = num.parse::<u128>().map_err(|_| AmountError::InvalidInteger(num.into()))?;
        Ok(Coin { denom: Denom::new(denom)?, amount })
    }
}

/// An exact non-negative decimal with 18 places, stored as an integer count of 10^-18 units.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct DecAmount(pub u128);

impl DecAmount {
    pub const ZERO: DecAmount = DecAmount(0);

    pub fn from_atto(atto: u128) -> Self {
        DecAmount(atto)
    }

    pub fn from_integer(units: u128) -> Result<Self, AmountError> {
        units.checked_mul(DEC_ONE).map(DecAmount).ok_or(AmountError::Overflow)
    }

    pub fn atto(self) -> u128 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The whole units, rounded down.
    pub fn floor_units(self) -> u128 {
        self.0 / DEC_ONE
    }

    pub fn checked_add(self, o: Self) -> Result<Self, AmountError> {
        self.0.checked_add(o.0).map(DecAmount).ok_or(AmountError::Overflow)
    }

    pub fn checked_sub(self, o: Self) -> Result<Self, AmountError> {
        self.0.checked_sub(o.0).map(DecAmount).ok_or(AmountError::Underflow)
    }

    pub fn checked_mul_int(self, n: u128) -> Result<Self, AmountError> {
        self.0.checked_mul(n).map(DecAmount).ok_or(AmountError::Overflow)
    }
}

impl fmt::Display for DecAmount {
    /// Always 18 decimal places, as Akash prints `sdk.Dec`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:018}", self.0 / DEC_ONE, self.0 % DEC_ONE)
    }
}

impl fmt::Debug for DecAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dec({self})")
    }
}

impl FromStr for DecAmount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AmountError::InvalidDecimal(s.to_string());
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return Err(bad());
        }
        if s.ends_with('.') || frac.len() > DEC_PLACES as usize {
            return Err(bad());
        }
        let int_val: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
        let mut frac_val: u128 =
            if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad())? };
        frac_val *= 10u128.pow(DEC_PLACES - frac.len() as u32);
        int_val
            .checked_mul(DEC_ONE)
            .and_then(|v| v.checked_add(frac_val))
            .map(DecAmount)
            .ok_or(AmountError::Overflow)
    }
}

impl serde::Serialize for DecAmount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DecAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A decimal amount of one denomination, for example a price per block.
#[derive(
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DecCoin {
    pub denom: Denom,
    pub amount: DecAmount,
}

impl fmt::Display for DecCoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.denom)
    }
}

/// Serde helper: `u128` as a decimal string (JSON numbers lose precision past 2^53).
pub mod u128_string {
    pub fn serialize<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse::<u128>().map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid amount `{s}`: expected a non-negative integer"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_parse_and_print() {
        assert_eq!("1".parse::<DecAmount>().unwrap().0, DEC_ONE);
        assert_eq!("0.000001".parse::<DecAmount>().unwrap().0, 1_000_000_000_000);
        assert_eq!(".5".parse::<DecAmount>().unwrap().0, DEC_ONE / 2);
        assert_eq!("1000.5".parse::<DecAmount>().unwrap().to_string(), "1000.500000000000000000");
        for bad in ["", ".", "1.", "-1", "1e3", "0.0000000000000000001", "1.2.3", " 1", "abc"] {
            assert!(bad.parse::<DecAmount>().is_err(), "{bad:?} accepted");
        }
        assert_eq!("999999999999999999999999".parse::<DecAmount>(), Err(AmountError::Overflow));
    }

    #[test]
    fn coins_and_denoms() {
        let c: Coin = "1000ugrid".parse().unwrap();
        assert_eq!(c.amount, 1000);
        assert_eq!(c.denom.as_str(), "ugrid");
        assert_eq!(c.to_string(), "1000ugrid");
        for bad in ["ugrid", "-5ugrid", "5", "5U", "5x"] {
            assert!(bad.parse::<Coin>().is_err(), "{bad:?} accepted");
        }
        assert!(Denom::new("ibc/27394fb0").is_ok());
        assert!(Denom::new("1abc").is_err());
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"denom":"ugrid","amount":"1000"}"#);
        assert!(serde_json::from_str::<Coin>(r#"{"denom":"ugrid","amount":"-5"}"#).is_err());
    }

    #[test]
    fn checked_math() {
        assert_eq!(u128::MAX.add_checked(1), Err(AmountError::Overflow));
        assert_eq!(0u128.sub_checked(1), Err(AmountError::Underflow));
        assert_eq!(DecAmount(1).checked_sub(DecAmount(2)), Err(AmountError::Underflow));
    }

    proptest! {
        #[test]
        fn decimal_display_round_trips(v in any::<u128>()) {
            let d = DecAmount(v);
            prop_assert_eq!(d.to_string().parse::<DecAmount>().unwrap(), d);
        }
    }
}
