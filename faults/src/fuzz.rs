//! Requests made up from the API's own descriptors: random messages of a method's input type
//! (every field's type, limits and nesting respected or broken on purpose, values drawn from
//! what breaks parsers: edge numbers, bad dates, decimals, recurrence rules, CEL, ids of the
//! caller's own tenant and of none, text of every script), and random or mangled bytes. The
//! same seed makes the same requests.

use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};

/// How deep nested messages are filled.
const DEPTH: usize = 3;

/// Makes requests with a seeded generator, naming real ids (`ids`) among made-up ones so
/// that some requests reach the stored rows behind the checks.
pub struct Fuzzer {
    rng: StdRng,
    ids: Vec<String>,
}

/// Text that breaks parsers: numbers, decimals, dates, rules, CEL, paging, escapes, scripts.
const TEXT: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "1.5",
    "1e309",
    "NaN",
    "-0",
    "99999999999999999999999999999999.99999",
    "0.00001",
    "1,5",
    " 12 ",
    "2026-02-30",
    "2026-13-01",
    "0000-00-00",
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=MO,WE",
    "FREQ=MONTHLY;BYMONTHDAY=31;INTERVAL=0",
    "FREQ=YEARLY;COUNT=-1",
    "FREQ=SECONDLY",
    "RRULE:FREQ=DAILY;UNTIL=19700101",
    "age >= 18",
    "assessments.INCOME.monthly_income <= 2 * 1215",
    "barriers.exists(b, b.type == 'HOUSING')",
    "delivered('FIN_ASSIST', 365).value < 1500",
    "((((((((((((((((((((",
    "1 / 0",
    "'a' + 1",
    "size('x') > 99999999999999999999",
    "*",
    "name,age",
    "a.b.c.d",
    "%",
    "_",
    "\\",
    "'; DROP TABLE records.service_records; --",
    "\u{0}",
    "\u{202e}gnp.exe",
    "Zoë Ñúñez",
    "王小明",
    "محمد",
    "😀👍🏽",
    "a\nb\tc",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "not-a-uuid",
    "eyJhbGciOiJub25lIn0.e30.",
    "AAAA",
    "////",
];

impl Fuzzer {
    pub fn new(seed: u64, ids: Vec<String>) -> Fuzzer {
        Fuzzer {
            rng: rand::SeedableRng::seed_from_u64(seed),
            ids,
        }
    }

    /// One request body for a method taking `input`: a made-up message most of the time,
    /// else random bytes or a made-up message mangled (cut short, bytes flipped).
    pub fn request(&mut self, input: &MessageDescriptor) -> Vec<u8> {
        match self.rng.random_range(0..10) {
            0 => {
                let mut bytes = vec![0u8; self.rng.random_range(0..256)];
                self.rng.fill_bytes(&mut bytes);
                bytes
            }
            1 => {
                let mut bytes = self.message(input, DEPTH).encode_to_vec();
                if !bytes.is_empty() {
                    let cut = self.rng.random_range(0..bytes.len());
                    bytes.truncate(cut.max(1));
                    for _ in 0..self.rng.random_range(1..4) {
                        let at = self.rng.random_range(0..bytes.len());
                        bytes[at] ^= 1 << self.rng.random_range(0..8);
                    }
                }
                bytes
            }
            _ => self.message(input, DEPTH).encode_to_vec(),
        }
    }

    /// A message of `descriptor` with some of its fields set to made-up values.
    pub fn message(&mut self, descriptor: &MessageDescriptor, depth: usize) -> DynamicMessage {
        let mut message = DynamicMessage::new(descriptor.clone());
        for field in descriptor.fields() {
            if !self.rng.random_bool(0.7) {
                continue;
            }
            let value = if field.is_list() {
                let n = *[0usize, 1, 1, 2, 3, 40].choose(&mut self.rng).unwrap_or(&1);
                Value::List((0..n).filter_map(|_| self.value(&field, depth)).collect())
            } else if field.is_map() {
                continue;
            } else {
                match self.value(&field, depth) {
                    Some(value) => value,
                    None => continue,
                }
            };
            message.set_field(&field, value);
        }
        message
    }

    fn value(&mut self, field: &FieldDescriptor, depth: usize) -> Option<Value> {
        let rng = &mut self.rng;
        Some(match field.kind() {
            Kind::String => Value::String(self.text(field)),
            Kind::Bytes => {
                let mut bytes = vec![0u8; rng.random_range(0..64)];
                rng.fill_bytes(&mut bytes);
                Value::Bytes(bytes.into())
            }
            Kind::Bool => Value::Bool(rng.random()),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(
                *[0, 1, -1, 13, 32, 100, 10_000, i32::MAX, i32::MIN]
                    .choose(rng)
                    .unwrap_or(&0),
            ),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(
                *[0, 1, -1, 1_000_000, i64::MAX, i64::MIN]
                    .choose(rng)
                    .unwrap_or(&0),
            ),
            Kind::Uint32 | Kind::Fixed32 => {
                Value::U32(*[0, 1, 1000, u32::MAX].choose(rng).unwrap_or(&0))
            }
            Kind::Uint64 | Kind::Fixed64 => {
                Value::U64(*[0, 1, 1000, u64::MAX].choose(rng).unwrap_or(&0))
            }
            Kind::Float => Value::F32(
                *[0.0, -1.0, f32::NAN, f32::INFINITY, 1e30]
                    .choose(rng)
                    .unwrap_or(&0.0),
            ),
            Kind::Double => Value::F64(
                *[0.0, -1.0, f64::NAN, f64::NEG_INFINITY, 1e300, 0.5]
                    .choose(rng)
                    .unwrap_or(&0.0),
            ),
            Kind::Enum(kind) => {
                let known: Vec<i32> = kind.values().map(|v| v.number()).collect();
                Value::EnumNumber(if rng.random_bool(0.85) {
                    *known.choose(rng).unwrap_or(&0)
                } else {
                    *[-1, 99, i32::MAX].choose(rng).unwrap_or(&99)
                })
            }
            Kind::Message(inner) => {
                if depth == 0 {
                    return None;
                }
                if inner.full_name() == "google.type.Date" {
                    let mut date = DynamicMessage::new(inner.clone());
                    for (name, choices) in [
                        ("year", &[2026, 2025, 0, -1, 1, 9999, 10_000, i32::MAX][..]),
                        ("month", &[1, 6, 12, 0, 13, -1][..]),
                        ("day", &[1, 15, 28, 29, 31, 0, 32][..]),
                    ] {
                        let v = *choices.choose(rng).unwrap_or(&1);
                        date.set_field_by_name(name, Value::I32(v));
                    }
                    Value::Message(date)
                } else {
                    Value::Message(self.message(&inner, depth - 1))
                }
            }
        })
    }

    fn text(&mut self, field: &FieldDescriptor) -> String {
        let name = field.name();
        let rng = &mut self.rng;
        let naming_an_id = name == "id" || name.ends_with("_id") || name.ends_with("_ids");
        match rng.random_range(0..10) {
            // A real id of the caller's tenant, where the field names one.
            0..=4 if naming_an_id && !self.ids.is_empty() => {
                self.ids.choose(rng).cloned().unwrap_or_default()
            }
            0..=1 if naming_an_id => uuid::Uuid::now_v7().to_string(),
            // Longer than most limits.
            2 => "x".repeat(*[129, 1001, 5000].choose(rng).unwrap_or(&129)),
            _ => TEXT.choose(rng).map(|t| t.to_string()).unwrap_or_default(),
        }
    }
}
