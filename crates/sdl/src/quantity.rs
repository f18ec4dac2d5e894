//! Quantities written in SDL files: CPU units, byte sizes and decimal prices.
//!
//! CPU and size conversions follow Akash's units and round toward zero as
//! Akash does (`"0.5"` cores is 500 millicores; `"1.5Gi"` is 1610612736
//! bytes), but compute exactly in decimal where Akash's Go parser goes through
//! a 64-bit float (so `2.01` cores is 2010 millicores here, 2009 there).
//! Prices are exact decimals with 18 fractional digits, like the Cosmos SDK's
//! `LegacyDec`.

use std::fmt;

/// Parses a CPU quantity into millicores: `"100m"`, `0.5`, `1`, `"2"`.
pub(crate) fn parse_cpu_millis(text: &str) -> Result<u64, String> {
    const EXPECTED: &str =
        "expected a positive number of cores (such as 0.5 or 2) or millicores (such as \"100m\")";
    if text.starts_with('-') {
        return Err(format!("negative cpu units {text:?}; {EXPECTED}"));
    }
    if let Some(millis) = text.strip_suffix('m') {
        if millis.is_empty() || !millis.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid cpu units {text:?}; {EXPECTED}"));
        }
        return millis
            .parse::<u32>()
            .map(u64::from)
            .map_err(|_| format!("cpu units {text:?} are too large; {EXPECTED}"));
    }
    if !text.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.' || b == b'+') {
        return Err(format!("invalid cpu units {text:?}; {EXPECTED}"));
    }
    let millis = scaled_decimal(text, 1000)
        .ok_or_else(|| format!("invalid cpu units {text:?}; {EXPECTED}"))?;
    if millis > u64::from(u32::MAX) {
        return Err(format!("cpu units {text:?} are too large; {EXPECTED}"));
    }
    Ok(millis)
}

/// `text * multiplier`, rounded toward zero, computed exactly: `text` is
/// `[+]digits[.digits][(e|E)[+-]digits]` (also `.5`). `None` when the text is
/// not such a number or the result does not fit in a u64.
fn scaled_decimal(text: &str, multiplier: u64) -> Option<u64> {
    let body = text.strip_prefix('+').unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = digits * 10^(exponent - frac_len)
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mut power = exponent.checked_sub(i32::try_from(frac_part.len()).ok()?)?;
    let mut numerator: u128 = if digits.is_empty() {
        0
    } else if digits.len() > 38 {
        return None;
    } else {
        digits.parse().ok()?
    };
    numerator = numerator.checked_mul(u128::from(multiplier))?;
    while power > 0 {
        numerator = numerator.checked_mul(10)?;
        power -= 1;
    }
    while power < 0 && numerator > 0 {
        numerator /= 10;
        power += 1;
    }
    u64::try_from(numerator).ok()
}

const KI: u64 = 1 << 10;
const K: u64 = 1000;

/// Parses a memory or storage size into bytes.
///
/// Accepts a plain number of bytes or a number followed by a unit: the decimal
/// units `k`, `M`, `G`, `T`, `P`, `E` and the binary units `Ki`, `Mi`, `Gi`,
/// `Ti`, `Pi`, `Ei`, as Akash's Go parser does; and, as Akash Console does,
/// the same letters in either case with an optional trailing `b`/`B`
/// (`512Mb`, `10GB`, `1gi`).
pub(crate) fn parse_size_bytes(text: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a size such as 512Mi, 1Gi, 10G or 1073741824 \
         (units k, M, G, T, P, E or Ki, Mi, Gi, Ti, Pi, Ei)";
    if text.starts_with('-') {
        return Err(format!("negative size {text:?}; {EXPECTED}"));
    }
    let (number, multiplier) =
        split_size_unit(text, true).ok_or_else(|| format!("invalid size {text:?}; {EXPECTED}"))?;
    if number.is_empty() {
        return Err(format!("invalid size {text:?}; {EXPECTED}"));
    }
    scaled_decimal(number, multiplier)
        .ok_or_else(|| format!("invalid or too large size {text:?}; {EXPECTED}"))
}

/// Parses a GPU memory size: a number of bytes or a number with a binary unit
/// (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`), as Akash does for `ram`.
pub(crate) fn parse_gpu_ram_bytes(text: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a size with a binary unit such as 80Gi or 24Gi";
    if text.starts_with('-') {
        return Err(format!("negative size {text:?}; {EXPECTED}"));
    }
    let (number, multiplier) = split_size_unit(text, false)
        .ok_or_else(|| format!("invalid gpu memory size {text:?}; {EXPECTED}"))?;
    if number.is_empty() {
        return Err(format!("invalid gpu memory size {text:?}; {EXPECTED}"));
    }
    scaled_decimal(number, multiplier)
        .ok_or_else(|| format!("invalid or too large gpu memory size {text:?}; {EXPECTED}"))
}

/// Length of the leading `digits[.digits][e[+-]digits]` part of `text`.
fn number_prefix_len(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'+') {
        i += 1;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// Splits a size into its number and the unit's multiplier.
///
/// `lenient` accepts any letter case and a trailing `b`/`B`; otherwise only
/// the binary units spelled exactly (`Gi`) are accepted.
fn split_size_unit(text: &str, lenient: bool) -> Option<(&str, u64)> {
    let start = number_prefix_len(text);
    if start == text.len() {
        return Some((text, 1));
    }
    let (number, unit) = text.split_at(start);
    if lenient {
        let mut chars = unit.chars();
        let prefix = chars.next()?.to_ascii_lowercase();
        let rest: String = chars.collect();
        let binary = match rest.as_str() {
            "" | "b" | "B" => false,
            "i" | "I" | "ib" | "iB" | "Ib" | "IB" => true,
            _ => return None,
        };
        let power = match prefix {
            'k' => 1,
            'm' => 2,
            'g' => 3,
            't' => 4,
            'p' => 5,
            'e' => 6,
            _ => return None,
        };
        let base = if binary { KI } else { K };
        Some((number, base.checked_pow(power)?))
    } else {
        let power = match unit {
            "Ki" => 1,
            "Mi" => 2,
            "Gi" => 3,
            "Ti" => 4,
            "Pi" => 5,
            "Ei" => 6,
            _ => return None,
        };
        Some((number, KI.checked_pow(power)?))
    }
}

/// An exact non-negative decimal with 18 fractional digits (Cosmos `LegacyDec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dec18 {
    atto: u128,
}

impl Dec18 {
    /// Number of fractional digits.
    pub const PRECISION: u32 = 18;
    const SCALE: u128 = 1_000_000_000_000_000_000;

    /// The decimal equal to the integer `n`.
    pub fn from_int(n: u64) -> Self {
        Dec18 { atto: u128::from(n) * Self::SCALE }
    }

    /// The value in units of 10^-18.
    pub fn atto(self) -> u128 {
        self.atto
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.atto == 0
    }

    /// `self * n`, or `None` on overflow.
    pub fn checked_mul_int(self, n: u64) -> Option<Self> {
        self.atto.checked_mul(u128::from(n)).map(|atto| Dec18 { atto })
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.atto.checked_add(other.atto).map(|atto| Dec18 { atto })
    }

    /// Parses `digits[.digits]` with at most 18 fractional digits.
    pub fn parse(text: &str) -> Result<Self, BadAmount> {
        Self::read(text).map_err(BadAmount)
    }

    fn read(text: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected a non-negative decimal amount such as 1000 or 0.25 \
             with at most 18 decimal places";
        if text.starts_with('-') {
            return Err(format!("amount {text:?} is negative; {EXPECTED}"));
        }
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int_part) || frac_part.is_some_and(|f| !digits(f)) {
            return Err(format!("invalid amount {text:?}; {EXPECTED}"));
        }
        let frac = frac_part.unwrap_or("");
        if frac.len() > Self::PRECISION as usize {
            return Err(format!("amount {text:?} has more than 18 decimal places; {EXPECTED}"));
        }
        let too_large = || format!("amount {text:?} is too large; {EXPECTED}");
        let int: u128 = int_part.parse().map_err(|_| too_large())?;
        let mut frac_atto: u128 =
            if frac.is_empty() { 0 } else { frac.parse().map_err(|_| too_large())? };
        for _ in frac.len()..Self::PRECISION as usize {
            frac_atto *= 10;
        }
        let atto = int
            .checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(frac_atto))
            .ok_or_else(too_large)?;
        Ok(Dec18 { atto })
    }
}

impl fmt::Display for Dec18 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:018}", self.atto / Self::SCALE, self.atto % Self::SCALE)
    }
}

/// Why a text is not a decimal amount, in one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadAmount(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_units_match_akash() {
        let cases = [
            ("100m", 100),
            ("1000m", 1000),
            ("0.5", 500),
            ("1", 1000),
            ("2.25", 2250),
            ("0.001", 1),
            ("0.1", 100),
            ("4", 4000),
            ("2.01", 2010),
            ("1e1", 10000),
            ("0.0005", 0),
        ];
        for (text, millis) in cases {
            assert_eq!(parse_cpu_millis(text), Ok(millis), "{text}");
        }
        for bad in [
            "-100m",
            "-1",
            "",
            "m",
            "1.5m",
            "abc",
            "1c",
            "inf",
            "NaN",
            "99999999999",
            ".",
            "1e",
            "1e99",
        ] {
            assert!(parse_cpu_millis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_accept_every_akash_unit() {
        let cases: [(&str, u64); 20] = [
            ("1", 1),
            ("1k", 1000),
            ("1Ki", 1024),
            ("1M", 1_000_000),
            ("1Mi", 1 << 20),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("1T", 1_000_000_000_000),
            ("1Ti", 1 << 40),
            ("1P", 1_000_000_000_000_000),
            ("1Pi", 1 << 50),
            ("1E", 1_000_000_000_000_000_000),
            ("1Ei", 1 << 60),
            ("0.5Gi", 1 << 29),
            ("1.5Gi", 1_610_612_736),
            ("10GB", 10_000_000_000),
            ("512Mb", 512_000_000),
            ("2gi", 2 << 30),
            ("512mi", 512 << 20),
            ("1K", 1000),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["", "-1Gi", "Gi", "1Xi", "1Gix", "1 Gi", "1.2.3Gi", "16Ei"] {
            assert!(parse_size_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gpu_ram_takes_binary_units_only() {
        assert_eq!(parse_gpu_ram_bytes("80Gi"), Ok(80 << 30));
        assert_eq!(parse_gpu_ram_bytes("1024"), Ok(1024));
        assert!(parse_gpu_ram_bytes("80G").is_err());
        assert!(parse_gpu_ram_bytes("80GB").is_err());
    }

    #[test]
    fn dec18_is_exact() {
        assert_eq!(
            Dec18::parse("1000").map(|d| d.to_string()),
            Ok("1000.000000000000000000".into())
        );
        assert_eq!(
            Dec18::parse("0.000000000000000001").map(|d| d.to_string()),
            Ok("0.000000000000000001".into())
        );
        assert_eq!(
            Dec18::parse("12.5").map(|d| d.to_string()),
            Ok("12.500000000000000000".to_string())
        );
        for bad in ["", "-1", "1.", ".5", "1e3", "0.0000000000000000001", "abc", "1.2.3"] {
            assert!(Dec18::parse(bad).is_err(), "{bad}");
        }
        let huge = "9".repeat(40);
        assert!(Dec18::parse(&huge).is_err());
    }
}
