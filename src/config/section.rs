//! Reading a mapping of the config file made of some [`TargetSettings`] keys and keys
//! of its own (a `targets[i]` entry, a `/probe` module), as strictly as a derived
//! `deny_unknown_fields` struct: exactly the section's keys, each once, an unknown one
//! refused with the section's list, a bad value reported at its key and line.
//!
//! serde's `flatten` would do the split, but it buffers the values (losing the line of
//! a bad one) and cannot list the expected keys, so the settings keys are handed to
//! [`TargetSettings`]' own derived reader one at a time instead.

use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

use super::settings::TargetSettings;

/// A mapping of the config file: its own keys plus some of [`TargetSettings`]'.
pub(super) trait Section: Default {
    /// The name in "expected struct ..." messages.
    const NAME: &'static str;
    /// Every key the section accepts, in the order an unknown-key error lists them.
    const KEYS: &'static [&'static str];
    /// The keys that must be present.
    const REQUIRED: &'static [&'static str] = &[];

    /// Where the section's settings keys go.
    fn settings(&mut self) -> &mut TargetSettings;

    /// Reads the value of `key` if it is one of the section's own keys (`Ok(false)`:
    /// a settings key).
    fn read_own<'de, A: MapAccess<'de>>(
        &mut self,
        _key: &'static str,
        _map: &mut A,
    ) -> Result<bool, A::Error> {
        Ok(false)
    }
}

/// Reads a [`Section`]; its `Deserialize` impl calls this.
pub(super) fn deserialize<'de, S: Section, D: Deserializer<'de>>(d: D) -> Result<S, D::Error> {
    d.deserialize_struct(S::NAME, S::KEYS, SectionVisitor(PhantomData))
}

struct SectionVisitor<S>(PhantomData<S>);

impl<'de, S: Section> Visitor<'de> for SectionVisitor<S> {
    type Value = S;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "struct {}", S::NAME)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S, A::Error> {
        let mut section = S::default();
        let mut seen: Vec<&'static str> = Vec::new();
        while let Some(key) = map.next_key_seed(Key(S::KEYS))? {
            if seen.contains(&key) {
                return Err(de::Error::duplicate_field(key));
            }
            seen.push(key);
            if !section.read_own(key, &mut map)? {
                let one = map.next_value_seed(OneSetting(key))?;
                let settings = section.settings();
                *settings = one.or(std::mem::take(settings));
            }
        }
        match S::REQUIRED.iter().find(|k| !seen.contains(k)) {
            Some(missing) => Err(de::Error::missing_field(missing)),
            None => Ok(section),
        }
    }
}

/// A key, checked against the section's list while the parser is at it (so an unknown
/// key is reported at its own line and column).
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Key {
    type Value = &'static str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
        self.0
            .iter()
            .find(|k| **k == v)
            .copied()
            .ok_or_else(|| E::unknown_field(v, self.0))
    }
}

/// The value of one settings key, read by [`TargetSettings`]' derived reader as a
/// mapping of that one key (the value still read from the parser, at its line).
struct OneSetting(&'static str);

impl<'de> DeserializeSeed<'de> for OneSetting {
    type Value = TargetSettings;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TargetSettings, D::Error> {
        serde::Deserialize::deserialize(OneEntry {
            key: self.0,
            value: Some(d),
            key_given: false,
        })
    }
}

/// A one-entry mapping: `key` and the parser's value.
struct OneEntry<D> {
    key: &'static str,
    value: Option<D>,
    key_given: bool,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for OneEntry<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        struct enum identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> MapAccess<'de> for OneEntry<D> {
    type Error = D::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, D::Error> {
        if self.key_given {
            return Ok(None);
        }
        self.key_given = true;
        seed.deserialize(self.key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, D::Error> {
        match self.value.take() {
            Some(d) => seed.deserialize(d),
            None => Err(de::Error::custom("a key's value read twice")),
        }
    }
}
