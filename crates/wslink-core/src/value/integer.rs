use std::fmt;

/// An integer in `i64::MIN..=u64::MAX`, the range msgpack can carry.
///
/// Normalised so that equal numbers compare equal whichever way they were
/// built: `Integer::from(5i64) == Integer::from(5u64)`.
///
/// ```
/// use wslink_core::Integer;
/// assert_eq!(Integer::from(u64::MAX).as_i64(), None);
/// assert_eq!(Integer::from(-3i32).as_i64(), Some(-3));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Integer(Repr);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Repr {
    /// Strictly negative.
    Neg(i64),
    /// Zero or positive.
    Pos(u64),
}

impl Integer {
    /// The value as `i64`, if it fits.
    pub fn as_i64(self) -> Option<i64> {
        match self.0 {
            Repr::Neg(n) => Some(n),
            Repr::Pos(p) => i64::try_from(p).ok(),
        }
    }

    /// The value as `u64`, if it is not negative.
    pub fn as_u64(self) -> Option<u64> {
        match self.0 {
            Repr::Neg(_) => None,
            Repr::Pos(p) => Some(p),
        }
    }

    /// The value as `f64`, rounding beyond 2^53.
    pub fn as_f64(self) -> f64 {
        match self.0 {
            Repr::Neg(n) => n as f64,
            Repr::Pos(p) => p as f64,
        }
    }

    /// Splits the value by sign: `Ok` for zero and up, `Err` below zero.
    pub(crate) fn by_sign(self) -> Result<u64, i64> {
        match self.0 {
            Repr::Neg(n) => Err(n),
            Repr::Pos(p) => Ok(p),
        }
    }

    /// `true` when the value is below zero.
    pub fn is_negative(self) -> bool {
        matches!(self.0, Repr::Neg(_))
    }
}

impl From<i64> for Integer {
    fn from(v: i64) -> Self {
        if v < 0 {
            Integer(Repr::Neg(v))
        } else {
            Integer(Repr::Pos(v as u64))
        }
    }
}

impl From<u64> for Integer {
    fn from(v: u64) -> Self {
        Integer(Repr::Pos(v))
    }
}

macro_rules! widen {
    ($($t:ty => $via:ty),*) => {$(
        impl From<$t> for Integer {
            fn from(v: $t) -> Self { Integer::from(v as $via) }
        }
    )*};
}
widen!(i8 => i64, i16 => i64, i32 => i64, isize => i64, u8 => u64, u16 => u64, u32 => u64, usize => u64);

impl From<Integer> for i128 {
    fn from(v: Integer) -> i128 {
        match v.0 {
            Repr::Neg(n) => i128::from(n),
            Repr::Pos(p) => i128::from(p),
        }
    }
}

impl fmt::Display for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Neg(n) => write!(f, "{n}"),
            Repr::Pos(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Debug for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
