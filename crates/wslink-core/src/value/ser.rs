//! `Value` as a serde data format, in both directions of serialization:
//! `impl Serialize for Value` lets a value sit inside a user's typed struct,
//! and [`to_value`] turns any `Serialize` type into a `Value`.

use bytes::Bytes;
use serde::ser::{self, Serialize, SerializeMap as _, SerializeSeq as _};

use super::{Integer, Map, Value, ValueError};
use crate::shared_bytes::{self, SHARE_THRESHOLD};

impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => match i.by_sign() {
                Ok(n) => s.serialize_u64(n),
                Err(n) => s.serialize_i64(n),
            },
            Value::F32(f) => s.serialize_f32(*f),
            Value::F64(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            // Shared rather than copied by a segmenting encode (see
            // `shared_bytes`); copied by any other serializer.
            Value::Bin(b) => crate::shared_bytes::serialize(b, s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            // rmp-serde recognises this newtype name and writes a real ext.
            Value::Ext(tag, data) => s.serialize_newtype_struct(
                rmp_serde::MSGPACK_EXT_STRUCT_NAME,
                &(*tag, ByteSlice(data)),
            ),
        }
    }
}

struct ByteSlice<'a>(&'a [u8]);

impl Serialize for ByteSlice<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Converts any serializable type into a [`Value`].
///
/// Byte slices (`serde_bytes`, [`Bytes`]) become [`Value::Bin`]; structs become
/// maps keyed by field name; unit enum variants become strings. Binary that
/// opts in to sharing ([`SharedBytes`](crate::SharedBytes) and the like, at
/// least [`SHARE_THRESHOLD`] long) keeps its buffer; other binary is copied.
///
/// ```
/// use wslink_core::{to_value, Value};
/// #[derive(serde::Serialize)]
/// struct Size { w: u32, h: u32 }
/// let v = to_value(&Size { w: 4, h: 3 }).unwrap();
/// assert_eq!(v.get("h"), Some(&Value::from(3)));
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    // Binary that opts in to sharing (`SharedBytes`, `Value::Bin`, see
    // `shared_bytes`) becomes a `Value::Bin` of the same buffer, not a copy.
    let _capture = shared_bytes::Capturing::start(SHARE_THRESHOLD);
    value.serialize(ValueSerializer)
}

struct ValueSerializer;

fn variant_map(variant: &str, value: Value) -> Value {
    Value::Map(vec![(Value::Str(variant.to_owned()), value)])
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        if let Ok(n) = i64::try_from(v) {
            Ok(n.into())
        } else if let Ok(n) = u64::try_from(v) {
            Ok(n.into())
        } else {
            Err(ValueError::new(format!(
                "integer {v} is outside the msgpack range"
            )))
        }
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| ValueError::new(format!("integer {v} is outside the msgpack range")))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::F32(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bin(
            shared_bytes::find(v).unwrap_or_else(|| Bytes::copy_from_slice(v)),
        ))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, ValueError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::Str(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Value, ValueError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Value, ValueError> {
        Ok(variant_map(variant, v.serialize(ValueSerializer)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ValueError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, ValueError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ValueError> {
        let mut b = self.serialize_seq(Some(len))?;
        b.variant = Some(variant);
        Ok(b)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<MapBuilder, ValueError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, ValueError> {
        let mut b = self.serialize_map(Some(len))?;
        b.variant = Some(variant);
        Ok(b)
    }
}

struct SeqBuilder {
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl SeqBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.items.push(v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn finish(self) -> Value {
        let array = Value::Array(self.items);
        match self.variant {
            Some(name) => variant_map(name, array),
            None => array,
        }
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.push(v)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}
impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.push(v)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}
impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.push(v)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}
impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.push(v)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

struct MapBuilder {
    entries: Map,
    key: Option<Value>,
    variant: Option<&'static str>,
}

impl MapBuilder {
    fn finish(self) -> Value {
        let map = Value::Map(self.entries);
        match self.variant {
            Some(name) => variant_map(name, map),
            None => map,
        }
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), ValueError> {
        self.key = Some(k.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ValueError::new("map value serialized before its key"))?;
        self.entries.push((key, v.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}
impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        self.entries
            .push((Value::Str(name.to_owned()), v.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}
impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        ser::SerializeStruct::serialize_field(self, name, v)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

// Keeps `Integer` usable as a map key or field on its own.
impl Serialize for Integer {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Value::Int(*self).serialize(s)
    }
}
