//! Typed parameters from a call's positional `args` and keyword `kwargs`.
//!
//! Python handlers take `def blob(self, size, seed=0)`; the Rust equivalent is
//! a tuple or a struct, filled the way Python binds arguments:
//!
//! - a **tuple** takes the positional arguments in order; missing trailing
//!   ones read as `nil`, so `Option` elements make them optional;
//! - a **struct** takes positional arguments by field order, then keyword
//!   arguments by field name (`#[serde(default)]` for optional ones);
//! - [`RawArgs`] takes both lists as they came.
//!
//! ```
//! use wslink_core::params::from_args;
//! use wslink_core::Value;
//!
//! #[derive(serde::Deserialize)]
//! struct Blob { size: u64, #[serde(default)] seed: u64 }
//!
//! let p: Blob = from_args(vec![Value::from(10)], vec![(Value::from("seed"), Value::from(3))]).unwrap();
//! assert_eq!((p.size, p.seed), (10, 3));
//!
//! let (a, b): (f64, Option<f64>) = from_args(vec![Value::from(1.5)], vec![]).unwrap();
//! assert_eq!((a, b), (1.5, None));
//!
//! let err = from_args::<(u32,)>(vec![Value::from("x")], vec![]).unwrap_err();
//! assert!(err.to_string().contains("expected u32"));
//! ```

use serde::de::{self, value::MapDeserializer, value::SeqDeserializer, DeserializeOwned, Visitor};
use serde::Deserialize;

use crate::value::{Map, Value, ValueError};

/// Binds `args` and `kwargs` to `T` (see the module docs for the rules).
pub fn from_args<T: DeserializeOwned>(args: Vec<Value>, kwargs: Map) -> Result<T, ValueError> {
    T::deserialize(Args { args, kwargs })
}

/// Both argument lists, untouched: for handlers that want to look for
/// themselves (the conformance service's `kwargs` method does).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawArgs {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map,
}

const RAW_ARGS: &str = "$wslink::RawArgs";

impl<'de> Deserialize<'de> for RawArgs {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("call arguments")
            }
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<RawArgs, D::Error> {
                let (args, kwargs) = <(Vec<Value>, Value)>::deserialize(d)?;
                let kwargs = match kwargs {
                    Value::Map(m) => m,
                    _ => Vec::new(),
                };
                Ok(RawArgs { args, kwargs })
            }
        }
        d.deserialize_newtype_struct(RAW_ARGS, V)
    }
}

struct Args {
    args: Vec<Value>,
    kwargs: Map,
}

impl Args {
    fn no_kwargs(&self) -> Result<(), ValueError> {
        match self.kwargs.first() {
            None => Ok(()),
            Some((k, _)) => Err(de::Error::custom(format!(
                "unexpected keyword argument {k:?}: this method takes positional arguments only"
            ))),
        }
    }
}

impl<'de> de::Deserializer<'de> for Args {
    type Error = ValueError;

    /// Without a shape to go by: the positional arguments as an array, or a
    /// single map `{args, kwargs}` when there are keyword arguments too.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        if self.kwargs.is_empty() {
            de::Deserializer::deserialize_any(Value::Array(self.args), visitor)
        } else {
            de::Deserializer::deserialize_any(
                Value::map([
                    ("args", Value::Array(self.args)),
                    ("kwargs", Value::Map(self.kwargs)),
                ]),
                visitor,
            )
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.no_kwargs()?;
        if let Some(extra) = self.args.first() {
            return Err(de::Error::custom(format!(
                "this method takes no arguments, got {}",
                extra.kind()
            )));
        }
        visitor.visit_unit()
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.no_kwargs()?;
        if self.args.len() > len {
            return Err(de::Error::custom(format!(
                "takes {len} arguments but {} were given",
                self.args.len()
            )));
        }
        let missing = len - self.args.len();
        let padded = self
            .args
            .into_iter()
            .chain(std::iter::repeat_n(Value::Nil, missing));
        let mut seq = SeqDeserializer::new(padded);
        let out = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(out)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.no_kwargs()?;
        de::Deserializer::deserialize_seq(Value::Array(self.args), visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if self.args.len() > fields.len() {
            return Err(de::Error::custom(format!(
                "takes {} arguments but {} were given",
                fields.len(),
                self.args.len()
            )));
        }
        let mut entries: Map = Vec::with_capacity(self.args.len() + self.kwargs.len());
        for (name, value) in fields.iter().zip(self.args) {
            entries.push((Value::from(*name), value));
        }
        let positional = entries.len();
        for (k, v) in self.kwargs {
            if let Some(name) = k.as_str() {
                if fields[..positional].contains(&name) {
                    return Err(de::Error::custom(format!(
                        "got multiple values for argument {name:?}"
                    )));
                }
            }
            entries.push((k, v));
        }
        let mut map = MapDeserializer::new(entries.into_iter());
        let out = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(out)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        if !self.args.is_empty() {
            return Err(de::Error::custom(
                "this method takes keyword arguments only",
            ));
        }
        de::Deserializer::deserialize_map(Value::Map(self.kwargs), visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name == RAW_ARGS {
            let both = Value::Array(vec![Value::Array(self.args), Value::Map(self.kwargs)]);
            return visitor.visit_newtype_struct(both);
        }
        // A newtype around one parameter: that parameter alone.
        self.no_kwargs()?;
        let mut args = self.args.into_iter();
        let first = args.next().unwrap_or(Value::Nil);
        if args.next().is_some() {
            return Err(de::Error::custom("takes 1 argument but more were given"));
        }
        visitor.visit_newtype_struct(first)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit_struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct P {
        a: u8,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn struct_binding_follows_python() {
        let p: P = from_args(vec![Value::from(1)], vec![]).unwrap();
        assert_eq!(p, P { a: 1, b: None });
        let p: P = from_args(vec![], vec![(Value::from("a"), Value::from(2))]).unwrap();
        assert_eq!(p.a, 2);
        let e = from_args::<P>(
            vec![Value::from(1)],
            vec![(Value::from("a"), Value::from(2))],
        )
        .unwrap_err();
        assert!(e.to_string().contains("multiple values"), "{e}");
        let e = from_args::<P>(vec![Value::from(1), Value::Nil, Value::Nil], vec![]).unwrap_err();
        assert!(e.to_string().contains("takes 2 arguments but 3"), "{e}");
        let e = from_args::<P>(vec![], vec![]).unwrap_err();
        assert!(e.to_string().contains("missing field `a`"), "{e}");
    }

    #[test]
    fn tuples_refuse_kwargs_and_extra_args() {
        assert!(from_args::<(u8,)>(vec![], vec![(Value::from("x"), Value::Nil)]).is_err());
        assert!(from_args::<(u8,)>(vec![Value::from(1), Value::from(2)], vec![]).is_err());
        let () = from_args(vec![], vec![]).unwrap();
        assert!(from_args::<()>(vec![Value::from(1)], vec![]).is_err());
    }

    #[test]
    fn raw_and_dynamic_forms() {
        let raw: RawArgs = from_args(
            vec![Value::from(1)],
            vec![(Value::from("k"), Value::from(true))],
        )
        .unwrap();
        assert_eq!(raw.args, vec![Value::from(1)]);
        assert_eq!(raw.kwargs.len(), 1);
        let v: Value = from_args(vec![Value::from(1)], vec![]).unwrap();
        assert_eq!(v, Value::from(vec![Value::from(1)]));
        let (only,): (Value,) = from_args(vec![Value::from("x")], vec![]).unwrap();
        assert_eq!(only.as_str(), Some("x"));
    }
}
